// SPDX-License-Identifier: Apache-2.0
#include "bench/bench.hpp"

#include "bench/client.hpp"
#include "bench/measure.hpp"

#include <uv.h>

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace ferrymq::bench {

namespace {

enum class Scenario : uint8_t { fanin, fanout, latency, connect, idle, durable };

constexpr uint16_t kKeepAlive = 60;                // seconds, sent in every CONNECT
constexpr uint64_t kPingEveryNs = 30'000'000'000;  // PINGREQ to every client, half the keep-alive
constexpr uint64_t kSetupStallNs = 15'000'000'000; // no CONNACK or SUBACK for this long: fail
constexpr uint64_t kDrainStallNs = 3'000'000'000;  // no delivery for this long: the rest is lost
constexpr uint64_t kCloseTimeoutNs = 10'000'000'000;
constexpr uint32_t kMaxBatch = 512;               // PUBLISHes one publisher encodes per loop turn
constexpr size_t kPayloadHeader = 20;             // u32 publisher, u64 sequence, u64 send time (ns)
constexpr size_t kMaxPublisherBacklog = 1u << 20; // bytes queued in one publisher
constexpr uint32_t kSessionExpiry = 3600;         // seconds, durable: the session outlives us
constexpr uint64_t kParkSettleNs = 100'000'000;   // durable: see Phase::parking

// Everything one run measured; printed as a line and as JSON.
struct Report {
    std::string scenario;
    std::string protocol;
    int qos = 0;
    uint32_t payload = 0; // bytes
    uint32_t publishers = 0;
    uint32_t subscribers = 0;
    uint32_t connections = 0; // connect, idle: connections asked for
    double rate_target = 0;   // total msg/s asked for; 0 = flat out
    double interval_s = 0;    // measured interval: first send to last delivery, or connects
    uint64_t published = 0;   // PUBLISHes sent
    uint64_t acked = 0;       // PUBACKs received (QoS 1)
    uint64_t expected = 0;    // copies the subscribers should receive
    uint64_t delivered = 0;   // copies received
    uint64_t lost = 0;        // expected - delivered when positive
    uint64_t reordered = 0;   // copies older than one already received from that publisher
    uint64_t foreign = 0;     // payloads that are not ours (should be 0)
    Histogram latency;        // send to receive, ns
    uint64_t connected = 0;   // connect, idle: CONNACKs received
    uint64_t failed = 0;      // connections refused, dropped or failed
    uint64_t still_open = 0;  // idle: connections alive after the hold
    std::optional<CpuTimes> broker_cpu; // broker CPU over the measured interval
    double load_cpu_s = 0;              // this process's CPU over the measured interval
    std::optional<uint64_t> rss_before_kb;
    std::optional<uint64_t> rss_after_kb;
    // Bytes the broker wrote to storage over the measured interval (/proc/PID/io).
    std::optional<uint64_t> broker_write_bytes;
    // durable: copies received after resuming the session (none without the drain), the
    // seconds from the reconnect to the last of them, and the bytes the broker wrote to
    // storage meanwhile (marking them sent and deleting them once acknowledged).
    std::optional<uint64_t> drained;
    double drain_s = 0;
    std::optional<uint64_t> drain_write_bytes;
    std::string error; // empty when the run completed
};

// Runs one scenario: owns the loop, every client and the two loop handles. Lives on
// run()'s stack; execute() returns only after every handle is closed and the loop closed.
class Runner final : private ClientOwner {
  public:
    Runner(const Options &options, Scenario scenario, mqtt::Version version,
           const sockaddr_storage &address, std::shared_ptr<const net::TlsContext> tls);
    ~Runner();
    Runner(const Runner &) = delete;
    Runner &operator=(const Runner &) = delete;

    // Runs the scenario to its end and returns what was measured.
    Report execute();
    // Connections the scenario opens.
    uint32_t total_clients() const { return total_clients_; }

  private:
    enum class Phase : uint8_t {
        connecting, // opening connections (and subscribing)
        parking,    // durable: the subscriber disconnected; its session is to be offline
        running,    // publishing
        draining,   // publishing stopped; waiting for the last deliveries and PUBACKs
        resuming,   // durable: the subscriber is back and receives what was queued
        holding,    // idle: connections open, waiting before the RSS is read
        closing,    // closing every client
        done,       // closing the loop handles
    };

    struct Publisher {
        uint32_t client = 0;    // index into clients_
        uint64_t sent = 0;      // PUBLISHes queued so far; also the next sequence number
        uint64_t quota = ~uint64_t{0}; // PUBLISHes to send in all (--messages), else no limit
        uint64_t acked = 0;     // PUBACKs received
        uint32_t inflight = 0;  // QoS 1 PUBLISHes without PUBACK
        uint64_t delivered = 0; // copies received by all subscribers together
        uint64_t slowest = 0;   // cached lower bound of the slowest subscriber's count
        uint64_t slowest_at = ~uint64_t{0}; // delivered_ when `slowest` was computed
        uint16_t next_id = 0;               // QoS 1 packet id
        std::string payload;                // reused buffer: header + filler
    };

    struct Subscriber {
        uint32_t client = 0;            // index into clients_
        std::vector<uint64_t> next_seq; // per publisher: the sequence number expected next
        std::vector<uint64_t> received; // per publisher: copies received
    };

    // ClientOwner
    void on_connected(Client &c) override;
    void on_subscribed(Client &c) override;
    void on_message(Client &c, const mqtt::Publish &publish, uint64_t recv_ns) override;
    void on_acked(Client &c, uint16_t packet_id) override;
    void on_failed(Client &c, const std::string &what) override;
    void on_closed(Client &c) override;
    void want_flush(Client &c) override { dirty_.push_back(c.index()); }
    std::vector<uint8_t> &read_buffer() override { return read_buffer_; }

    bool traffic() const {
        return scenario_ == Scenario::fanin || scenario_ == Scenario::fanout ||
               scenario_ == Scenario::latency || scenario_ == Scenario::durable;
    }
    // The durable scenario's subscriber comes back as a second client, `resumed_client_`.
    bool is_subscriber(uint32_t index) const {
        return traffic() && (index < subscribers_.size() || index == resumed_client_);
    }
    // Copies every subscriber should have received when the last PUBACK is in: none for
    // the durable scenario, whose subscriber is offline while the publishers run.
    uint64_t expected_copies() const {
        uint64_t expected = 0;
        if (scenario_ != Scenario::durable) {
            for (const Publisher &p : publishers_) {
                expected += p.sent * subscribers_.size();
            }
        }
        return expected;
    }
    void advance();
    void on_tick();
    void on_turn();
    void open_more();
    void start_traffic(uint64_t now);
    void stop_measuring(uint64_t end_ns);
    void resume_session(uint64_t now);
    void pump(uint64_t now);
    uint64_t slowest_delivered(Publisher &p);
    void begin_closing();
    void fail_run(std::string why);
    void close_handles();

    const Options &options_;
    Scenario scenario_;
    mqtt::Version version_;
    sockaddr_storage address_;
    std::shared_ptr<const net::TlsContext> tls_; // null: plain TCP
    double duration_s_;
    double rate_; // total msg/s, 0 = flat out
    uint32_t total_clients_ = 0;
    std::string nonce_;
    std::string topic_;

    uv_loop_t loop_{};
    uv_timer_t tick_{};   // phase changes, rate pacing, timeouts
    uv_prepare_t turn_{}; // publishes and writes before the loop sleeps
    bool handles_open_ = false;
    Phase phase_ = Phase::connecting;
    std::vector<std::unique_ptr<Client>> clients_;
    std::vector<uint32_t> dirty_;
    std::vector<uint8_t> read_buffer_ = std::vector<uint8_t>(64 * 1024);
    std::vector<Subscriber> subscribers_;
    std::vector<Publisher> publishers_;

    uint32_t opened_ = 0;      // connects started
    uint32_t connected_ = 0;   // CONNACKs received
    uint32_t subscribed_ = 0;  // SUBACKs received
    uint32_t failed_ = 0;      // clients that failed before or after CONNACK
    uint32_t closed_ = 0;      // close callbacks run
    uint64_t delivered_ = 0;   // copies received over all subscribers
    uint64_t progress_ns_ = 0; // last CONNACK, SUBACK, delivery or PUBACK
    uint64_t connect_start_ns_ = 0;
    uint64_t last_connack_ns_ = 0;
    uint64_t start_ns_ = 0; // traffic started
    uint64_t stop_ns_ = 0;  // publishing stopped
    uint64_t last_recv_ns_ = 0;
    uint64_t hold_until_ns_ = 0;
    uint64_t closing_since_ns_ = 0;
    uint64_t last_ping_ns_ = 0;
    uint64_t last_ack_ns_ = 0;
    uint64_t parked_ns_ = 0;                 // durable: the subscriber's connection closed
    uint64_t resume_ns_ = 0;                 // durable: the subscriber reconnected
    uint64_t delivered_before_resume_ = 0;   // durable: copies received while offline (0)
    uint32_t resumed_client_ = ~uint32_t{0}; // durable: the subscriber's second client
    std::optional<CpuTimes> broker_cpu_start_;
    std::optional<uint64_t> broker_write_start_;
    std::optional<uint64_t> drain_write_start_;
    double load_cpu_start_ = 0;
    std::string first_failure_;
    Report report_;
};

Runner::Runner(const Options &options, Scenario scenario, mqtt::Version version,
               const sockaddr_storage &address, std::shared_ptr<const net::TlsContext> tls)
    : options_(options), scenario_(scenario), version_(version), address_(address),
      tls_(std::move(tls)) {
    const bool holds = scenario == Scenario::idle;
    duration_s_ = options.duration.value_or(holds ? 2.0 : 10.0);
    rate_ = options.rate.value_or(scenario == Scenario::latency ? 20000.0 : 0.0);
    // The nonce keeps client ids and the topic apart from another run on the same broker.
    char nonce[32];
    std::snprintf(nonce, sizeof nonce, "%x-%" PRIx64, unsigned(getpid()), uv_hrtime() & 0xFFFFFF);
    nonce_ = nonce;
    topic_ = options.topic.empty() ? "ferrymq-bench/" + nonce_ + "/data" : options.topic;

    uint32_t pubs = 0;
    uint32_t subs = 0;
    switch (scenario) {
    case Scenario::fanin:
        pubs = options.clients.value_or(8);
        subs = 1;
        break;
    case Scenario::latency:
        pubs = options.clients.value_or(1);
        subs = 1;
        break;
    case Scenario::durable:
        pubs = options.clients.value_or(4);
        subs = options.subscriber ? 1 : 0;
        break;
    case Scenario::fanout:
        pubs = 1;
        subs = options.clients.value_or(1000);
        break;
    case Scenario::connect:
        total_clients_ = options.clients.value_or(1000);
        break;
    case Scenario::idle:
        total_clients_ = options.clients.value_or(10000);
        break;
    }
    if (traffic()) {
        total_clients_ = pubs + subs;
        subscribers_.resize(subs);
        for (uint32_t i = 0; i < subs; ++i) {
            subscribers_[i].client = i;
            subscribers_[i].next_seq.assign(pubs, 0);
            subscribers_[i].received.assign(pubs, 0);
        }
        publishers_.resize(pubs);
        for (uint32_t i = 0; i < pubs; ++i) {
            publishers_[i].client = subs + i;
            publishers_[i].payload.assign(options.payload, 'x');
            if (options.messages) {
                // The first publishers send one more when the total does not divide evenly.
                publishers_[i].quota = *options.messages / pubs + (i < *options.messages % pubs);
            }
        }
    }
    report_.scenario = options.scenario;
    report_.protocol = version == mqtt::Version::v5 ? "5" : "3.1.1";
    report_.qos = options.qos;
    report_.payload = options.payload;
    report_.publishers = pubs;
    report_.subscribers = subs;
    report_.connections = total_clients_;
    report_.rate_target = traffic() ? rate_ : 0;
}

Runner::~Runner() = default;

Report Runner::execute() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    uv_prepare_init(&loop_, &turn_);
    turn_.data = this;
    handles_open_ = true;
    uv_timer_start(
        &tick_, [](uv_timer_t *h) { static_cast<Runner *>(h->data)->on_tick(); }, 1, 1);
    uv_prepare_start(&turn_, [](uv_prepare_t *h) { static_cast<Runner *>(h->data)->on_turn(); });

    if (scenario_ == Scenario::idle && options_.broker_pid != 0) {
        report_.rss_before_kb = process_rss_kb(options_.broker_pid);
    }
    connect_start_ns_ = progress_ns_ = last_ping_ns_ = uv_hrtime();
    if (scenario_ == Scenario::connect) {
        broker_cpu_start_ =
            options_.broker_pid ? process_cpu_times(options_.broker_pid) : std::nullopt;
        load_cpu_start_ = own_cpu_seconds();
    }
    open_more();
    uv_run(&loop_, UV_RUN_DEFAULT);
    const int rc = uv_loop_close(&loop_);
    if (rc != 0 && report_.error.empty()) {
        report_.error = std::string("loop did not close cleanly: ") + uv_err_name(rc);
    }
    clients_.clear();

    report_.connected = connected_;
    report_.failed = failed_;
    report_.delivered = delivered_;
    for (const Publisher &p : publishers_) {
        report_.published += p.sent;
        report_.acked += p.acked;
    }
    if (scenario_ != Scenario::durable) {
        report_.expected = report_.published * subscribers_.size();
        report_.lost = report_.expected > delivered_ ? report_.expected - delivered_ : 0;
        return std::move(report_);
    }
    // durable: nothing is expected while the subscriber is offline; once it resumed, every
    // acknowledged message must come back, so a publisher's PUBACKs beyond the copies the
    // subscriber received are lost. Unacknowledged messages may come too; they are not owed.
    report_.delivered = delivered_before_resume_;
    if (report_.drained) {
        report_.expected = report_.acked;
        for (size_t pub = 0; pub < publishers_.size(); ++pub) {
            const uint64_t received = subscribers_[0].received[pub];
            const uint64_t acked = publishers_[pub].acked;
            report_.lost += acked > received ? acked - received : 0;
        }
    }
    return std::move(report_);
}

// Starts connects until `concurrency` are in progress or every client has been started.
void Runner::open_more() {
    while (phase_ == Phase::connecting && opened_ < total_clients_ &&
           opened_ - connected_ - failed_ < options_.concurrency) {
        const uint32_t index = opened_++;
        ClientOwner &owner = *this;
        clients_.push_back(std::make_unique<Client>(loop_, owner, index, version_, tls_));
        Client &c = *clients_.back();
        const std::string id = "fmqb-" + nonce_ + "-" + std::to_string(index);
        SessionOptions session;
        if (scenario_ == Scenario::durable && is_subscriber(index)) {
            session = {false, kSessionExpiry};
        }
        const int rc =
            c.connect(reinterpret_cast<const sockaddr &>(address_), id, kKeepAlive, session);
        if (rc != 0) {
            ++failed_;
            if (first_failure_.empty()) {
                first_failure_ = std::string("connect: ") + uv_err_name(rc);
            }
            if (traffic()) {
                fail_run(first_failure_); // every client of a traffic scenario counts
            }
        }
    }
}

void Runner::on_connected(Client &c) {
    ++connected_;
    last_connack_ns_ = progress_ns_ = uv_hrtime();
    if (c.index() == resumed_client_) {
        // Without the session the queued messages are gone and the count means nothing.
        if (!c.session_present()) {
            fail_run("the broker did not keep the subscriber's persistent session");
        }
        return;
    }
    if (is_subscriber(c.index())) {
        c.subscribe(topic_, uint8_t(options_.qos));
    }
    open_more();
}

void Runner::on_subscribed(Client &) {
    ++subscribed_;
    progress_ns_ = uv_hrtime();
}

void Runner::on_message(Client &c, const mqtt::Publish &publish, uint64_t recv_ns) {
    if (!is_subscriber(c.index()) || publish.payload.size() < kPayloadHeader) {
        ++report_.foreign;
        return;
    }
    uint32_t pub = 0;
    uint64_t seq = 0;
    uint64_t sent_ns = 0;
    std::memcpy(&pub, publish.payload.data(), 4);
    std::memcpy(&seq, publish.payload.data() + 4, 8);
    std::memcpy(&sent_ns, publish.payload.data() + 12, 8);
    if (pub >= publishers_.size()) {
        ++report_.foreign;
        return;
    }
    Subscriber &s = subscribers_[c.index() == resumed_client_ ? 0 : c.index()];
    if (seq >= s.next_seq[pub]) {
        s.next_seq[pub] = seq + 1; // a gap is counted as loss at the end, if it stays one
    } else {
        ++report_.reordered;
    }
    ++s.received[pub];
    ++publishers_[pub].delivered;
    ++delivered_;
    // A message queued for an offline session waits as long as the session is away; that
    // wait is the scenario's design, not the broker's latency.
    if (scenario_ != Scenario::durable) {
        report_.latency.record(recv_ns > sent_ns ? recv_ns - sent_ns : 0);
    }
    last_recv_ns_ = progress_ns_ = recv_ns;
}

void Runner::on_acked(Client &c, uint16_t) {
    const size_t pub = size_t(c.index()) - subscribers_.size();
    if (is_subscriber(c.index()) || !traffic() || pub >= publishers_.size()) {
        return;
    }
    Publisher &p = publishers_[pub];
    if (p.inflight > 0) {
        --p.inflight;
        ++p.acked;
    }
    last_ack_ns_ = progress_ns_ = uv_hrtime();
}

void Runner::on_failed(Client &c, const std::string &what) {
    if (phase_ == Phase::closing || phase_ == Phase::done) {
        return; // the broker may close first while we close
    }
    ++failed_;
    if (first_failure_.empty()) {
        first_failure_ = "client " + std::to_string(c.index()) + ": " + what;
    }
    if (traffic()) {
        // Every client of a traffic scenario counts; without one the figures mean nothing.
        fail_run(first_failure_);
        return;
    }
    if (phase_ == Phase::connecting) {
        open_more();
    }
}

void Runner::on_closed(Client &) {
    ++closed_;
}

void Runner::on_tick() {
    const uint64_t now = uv_hrtime();
    if (now - last_ping_ns_ >= kPingEveryNs && phase_ != Phase::closing && phase_ != Phase::done) {
        last_ping_ns_ = now;
        for (auto &c : clients_) {
            if (c->ready()) {
                c->send(mqtt::Pingreq{});
            }
        }
    }
    advance();
}

// The scenario's state machine; runs every millisecond and decides when a phase ends.
void Runner::advance() {
    const uint64_t now = uv_hrtime();
    switch (phase_) {
    case Phase::connecting: {
        const bool all_done =
            connected_ + failed_ == total_clients_ && subscribed_ == subscribers_.size();
        if (!all_done) {
            if (now - progress_ns_ > kSetupStallNs) {
                fail_run("set-up stalled: " + std::to_string(connected_) + " of " +
                         std::to_string(total_clients_) + " connected, " +
                         std::to_string(subscribed_) + " of " +
                         std::to_string(subscribers_.size()) + " subscribed");
            }
            return;
        }
        if (scenario_ == Scenario::durable && !subscribers_.empty()) {
            clients_[subscribers_[0].client]->disconnect();
            progress_ns_ = now;
            phase_ = Phase::parking;
            return;
        }
        if (traffic()) {
            start_traffic(now);
            return;
        }
        if (scenario_ == Scenario::connect) {
            stop_measuring(last_connack_ns_ != 0 ? last_connack_ns_ : now);
            begin_closing();
            return;
        }
        // idle: let the broker settle (allocator, deferred frees) before reading its RSS.
        hold_until_ns_ = now + uint64_t(duration_s_ * 1e9);
        phase_ = Phase::holding;
        return;
    }
    case Phase::parking:
        // The broker reads the subscriber's DISCONNECT before the FIN that closed its
        // socket, but may read a publisher's first PUBLISH in the same turn as either; the
        // pause makes the session offline before the first message, so that every message
        // measured is one the broker had to store.
        if (clients_[subscribers_[0].client]->state() == Client::State::closed) {
            parked_ns_ = parked_ns_ != 0 ? parked_ns_ : now;
            if (now - parked_ns_ >= kParkSettleNs) {
                start_traffic(now);
            }
        } else if (now - progress_ns_ > kSetupStallNs) {
            fail_run("set-up stalled: the subscriber's DISCONNECT did not complete");
        }
        return;
    case Phase::running: {
        bool finished = now - start_ns_ >= uint64_t(duration_s_ * 1e9);
        if (options_.messages) {
            finished = true;
            for (const Publisher &p : publishers_) {
                finished = finished && p.sent >= p.quota;
            }
        }
        if (finished) {
            stop_ns_ = now;
            progress_ns_ = now;
            phase_ = Phase::draining;
        }
        return;
    }
    case Phase::draining: {
        bool complete = delivered_ >= expected_copies();
        for (const Publisher &p : publishers_) {
            complete = complete && p.inflight == 0;
        }
        if (!complete && now - progress_ns_ <= kDrainStallNs) {
            return;
        }
        if (scenario_ != Scenario::durable) {
            stop_measuring(last_recv_ns_ > start_ns_ ? std::max(last_recv_ns_, stop_ns_) : now);
            begin_closing();
            return;
        }
        // durable: what is measured ends with the last PUBACK.
        stop_measuring(last_ack_ns_ > start_ns_ ? std::max(last_ack_ns_, stop_ns_) : now);
        if (options_.drain && !subscribers_.empty()) {
            resume_session(now);
        } else {
            begin_closing();
        }
        return;
    }
    case Phase::resuming: {
        Client &c = *clients_[resumed_client_];
        uint64_t acked = 0;
        for (const Publisher &p : publishers_) {
            acked += p.acked;
        }
        const uint64_t drained = delivered_ - delivered_before_resume_;
        const uint64_t stall = c.ready() ? kDrainStallNs : kSetupStallNs;
        if ((c.ready() && drained >= acked) || now - progress_ns_ > stall) {
            report_.drained = drained;
            report_.drain_s = drained != 0 ? double(last_recv_ns_ - resume_ns_) / 1e9
                                           : double(now - resume_ns_) / 1e9;
            if (drain_write_start_) {
                // The deletes of the last acknowledgements may wait for the next commit.
                if (std::optional<uint64_t> end = process_write_bytes(options_.broker_pid)) {
                    report_.drain_write_bytes = *end - *drain_write_start_;
                }
            }
            begin_closing();
        }
        return;
    }
    case Phase::holding:
        if (now >= hold_until_ns_) {
            if (options_.broker_pid != 0) {
                report_.rss_after_kb = process_rss_kb(options_.broker_pid);
            }
            for (const auto &c : clients_) {
                report_.still_open += c->ready() ? 1 : 0;
            }
            begin_closing();
        }
        return;
    case Phase::closing:
        if (closed_ == clients_.size()) {
            phase_ = Phase::done;
            close_handles();
        } else if (now - closing_since_ns_ > kCloseTimeoutNs) {
            for (auto &c : clients_) {
                c->close(true); // drains that did not finish
            }
        }
        return;
    case Phase::done:
        return;
    }
}

void Runner::start_traffic(uint64_t now) {
    phase_ = Phase::running;
    start_ns_ = now;
    progress_ns_ = now;
    broker_cpu_start_ = options_.broker_pid ? process_cpu_times(options_.broker_pid) : std::nullopt;
    broker_write_start_ =
        options_.broker_pid ? process_write_bytes(options_.broker_pid) : std::nullopt;
    load_cpu_start_ = own_cpu_seconds();
}

// Closes the measured interval at `end_ns` and reads the CPU counters.
void Runner::stop_measuring(uint64_t end_ns) {
    const uint64_t begin = traffic() ? start_ns_ : connect_start_ns_;
    report_.interval_s = double(end_ns - begin) / 1e9;
    report_.load_cpu_s = own_cpu_seconds() - load_cpu_start_;
    if (broker_cpu_start_) {
        if (std::optional<CpuTimes> end = process_cpu_times(options_.broker_pid)) {
            report_.broker_cpu = *end - *broker_cpu_start_;
        }
    }
    if (broker_write_start_) {
        if (std::optional<uint64_t> end = process_write_bytes(options_.broker_pid)) {
            report_.broker_write_bytes = *end - *broker_write_start_;
        }
    }
}

// durable: reconnects the subscriber to the session it left, as a second client, so that
// it receives every message queued while it was away.
void Runner::resume_session(uint64_t now) {
    phase_ = Phase::resuming;
    resume_ns_ = progress_ns_ = now;
    delivered_before_resume_ = delivered_;
    drain_write_start_ =
        options_.broker_pid ? process_write_bytes(options_.broker_pid) : std::nullopt;
    resumed_client_ = uint32_t(clients_.size());
    ClientOwner &owner = *this;
    clients_.push_back(std::make_unique<Client>(loop_, owner, resumed_client_, version_, tls_));
    const std::string id = "fmqb-" + nonce_ + "-" + std::to_string(subscribers_[0].client);
    const int rc = clients_.back()->connect(reinterpret_cast<const sockaddr &>(address_), id,
                                            kKeepAlive, {false, kSessionExpiry});
    if (rc != 0) {
        fail_run(std::string("reconnecting the subscriber: ") + uv_err_name(rc));
    }
}

// Runs once per loop turn before the loop sleeps: publishers queue what they may, then
// every client with output writes it in one go.
void Runner::on_turn() {
    if (phase_ == Phase::running) {
        pump(uv_hrtime());
    }
    std::vector<uint32_t> dirty;
    dirty.swap(dirty_);
    for (uint32_t index : dirty) {
        clients_[index]->flush();
    }
    if (dirty_.empty()) {
        dirty_.swap(dirty); // keep the capacity
        dirty_.clear();
    }
}

// The number of copies of `p`'s messages that its slowest subscriber has received, or a
// lower bound of it. The exact minimum over 1,000 subscribers is recomputed only when the
// bound blocks the publisher and something was delivered since the last computation.
uint64_t Runner::slowest_delivered(Publisher &p) {
    const size_t pub = size_t(&p - publishers_.data());
    if (subscribers_.size() == 1) {
        return subscribers_[0].received[pub];
    }
    if (p.sent - p.slowest < options_.window || p.slowest_at == delivered_) {
        return p.slowest;
    }
    uint64_t slowest = ~uint64_t{0};
    for (const Subscriber &s : subscribers_) {
        slowest = std::min(slowest, s.received[pub]);
    }
    p.slowest = slowest;
    p.slowest_at = delivered_;
    return slowest;
}

// Queues the PUBLISHes each publisher may send now: no more than the rate has made due,
// than the end-to-end window and the QoS 1 in-flight window allow, and than one batch.
void Runner::pump(uint64_t now) {
    const double elapsed_s = double(now - start_ns_) / 1e9;
    for (Publisher &p : publishers_) {
        Client &c = *clients_[p.client];
        if (!c.ready() || c.pending_bytes() > kMaxPublisherBacklog) {
            continue;
        }
        uint64_t allowed = kMaxBatch;
        // The durable scenario's subscriber is away; only the in-flight window holds back.
        if (scenario_ != Scenario::durable) {
            const uint64_t ahead = p.sent - slowest_delivered(p);
            allowed =
                std::min<uint64_t>(allowed, ahead < options_.window ? options_.window - ahead : 0);
        }
        if (options_.qos > 0) {
            // The broker's Receive Maximum bounds the window too [MQTT-4.9.0-2].
            const uint32_t window = std::min<uint32_t>(options_.inflight, c.receive_maximum());
            allowed = std::min<uint64_t>(allowed, window > p.inflight ? window - p.inflight : 0);
        }
        allowed = std::min<uint64_t>(allowed, p.quota - p.sent);
        if (rate_ > 0) {
            const double per_publisher = rate_ / double(publishers_.size());
            const uint64_t due = uint64_t(elapsed_s * per_publisher) + 1;
            allowed = std::min<uint64_t>(allowed, due > p.sent ? due - p.sent : 0);
        }
        const uint32_t pub = uint32_t(&p - publishers_.data());
        mqtt::PublishRef ref;
        ref.topic = topic_;
        ref.qos = uint8_t(options_.qos);
        for (uint64_t i = 0; i < allowed; ++i) {
            const uint64_t seq = p.sent++;
            const uint64_t sent_ns = uv_hrtime();
            std::memcpy(p.payload.data(), &pub, 4);
            std::memcpy(p.payload.data() + 4, &seq, 8);
            std::memcpy(p.payload.data() + 12, &sent_ns, 8);
            ref.payload = p.payload;
            if (options_.qos > 0) {
                p.next_id = p.next_id == 0xFFFF ? 1 : p.next_id + 1;
                ref.packet_id = p.next_id;
                ++p.inflight;
            }
            c.publish(ref);
        }
    }
}

void Runner::begin_closing() {
    phase_ = Phase::closing;
    closing_since_ns_ = uv_hrtime();
    // Many connections end with RST so that no TIME_WAIT socket is left behind; the few of
    // a traffic scenario say DISCONNECT like well-behaved clients.
    const bool reset = !traffic();
    for (auto &c : clients_) {
        if (reset) {
            c->close(true);
        } else {
            c->disconnect();
        }
    }
}

void Runner::fail_run(std::string why) {
    if (report_.error.empty()) {
        report_.error = std::move(why);
    }
    if (phase_ == Phase::running || phase_ == Phase::draining) {
        stop_measuring(uv_hrtime());
    }
    if (phase_ != Phase::closing && phase_ != Phase::done) {
        begin_closing();
    }
}

void Runner::close_handles() {
    if (!handles_open_) {
        return;
    }
    handles_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t *>(&tick_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&turn_), nullptr);
}

// Output.

std::string json_number(std::optional<double> value, const char *format = "%.6g") {
    if (!value || !std::isfinite(*value)) {
        return "null";
    }
    char text[64];
    std::snprintf(text, sizeof text, format, *value);
    return text;
}

std::string json_string(const std::string &text) {
    std::string out = "\"";
    for (char ch : text) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", ch);
            out += escaped;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::optional<double> per_second(double count, double seconds) {
    return seconds > 0 ? std::optional<double>(count / seconds) : std::nullopt;
}

// The messages a run's rate counts: copies delivered, or for the durable scenario, whose
// subscriber is away, PUBLISHes the broker acknowledged (and so had stored).
uint64_t measured_messages(const Report &r) {
    return r.scenario == "durable" ? r.acked : r.delivered;
}

// Broker CPU seconds (all of it, or one part) per million measured messages.
std::optional<double> cpu_per_million(const Report &r, double CpuTimes::*part = nullptr) {
    if (!r.broker_cpu || measured_messages(r) == 0) {
        return std::nullopt;
    }
    const double seconds = part ? (*r.broker_cpu).*part : r.broker_cpu->total();
    return seconds / (double(measured_messages(r)) / 1e6);
}

// Bytes the broker wrote to storage per measured message: its write amplification.
std::optional<double> write_bytes_per_message(const Report &r) {
    if (!r.broker_write_bytes || measured_messages(r) == 0) {
        return std::nullopt;
    }
    return double(*r.broker_write_bytes) / double(measured_messages(r));
}

std::optional<double> rss_per_connection(const Report &r) {
    if (!r.rss_before_kb || !r.rss_after_kb || r.connected == 0) {
        return std::nullopt;
    }
    return (double(*r.rss_after_kb) - double(*r.rss_before_kb)) * 1024.0 / double(r.connected);
}

std::string to_json(const Report &r) {
    const auto us = [&](double q) {
        return r.latency.count() ? std::optional<double>(double(r.latency.percentile(q)) / 1e3)
                                 : std::nullopt;
    };
    const auto rss = [](std::optional<uint64_t> kb) {
        return kb ? std::optional<double>(double(*kb)) : std::nullopt;
    };
    std::string j = "{";
    auto field = [&](const char *name, const std::string &value) {
        if (j.size() > 1) {
            j += ", ";
        }
        j += "\"";
        j += name;
        j += "\": ";
        j += value;
    };
    auto count = [](uint64_t n) { return std::to_string(n); };
    field("scenario", json_string(r.scenario));
    field("protocol", json_string(r.protocol));
    field("qos", count(uint64_t(r.qos)));
    field("payload", count(r.payload));
    field("publishers", count(r.publishers));
    field("subscribers", count(r.subscribers));
    field("connections", count(r.connections));
    field("rate_target", json_number(r.rate_target));
    field("interval_s", json_number(r.interval_s));
    field("published", count(r.published));
    field("acked", count(r.acked));
    field("expected", count(r.expected));
    field("delivered", count(r.delivered));
    field("lost", count(r.lost));
    field("reordered", count(r.reordered));
    field("foreign", count(r.foreign));
    field("drained", r.drained ? count(*r.drained) : "null");
    field("drain_s", json_number(r.drained ? std::optional<double>(r.drain_s) : std::nullopt));
    field("drain_write_bytes", r.drain_write_bytes ? count(*r.drain_write_bytes) : "null");
    field("msgs_per_s", json_number(per_second(double(measured_messages(r)), r.interval_s)));
    field("publish_rate", json_number(per_second(double(r.published), r.interval_s)));
    field("latency_p50_us", json_number(us(0.50)));
    field("latency_p99_us", json_number(us(0.99)));
    field("latency_max_us",
          json_number(r.latency.count() ? std::optional<double>(double(r.latency.max()) / 1e3)
                                        : std::nullopt));
    field("connected", count(r.connected));
    field("failed", count(r.failed));
    field("still_open", count(r.still_open));
    const bool connects = r.scenario == "connect";
    field("connect_per_s",
          json_number(connects ? per_second(double(r.connected), r.interval_s) : std::nullopt));
    const auto broker = [&](double CpuTimes::*part) {
        return r.broker_cpu
                   ? std::optional<double>(part ? (*r.broker_cpu).*part : r.broker_cpu->total())
                   : std::nullopt;
    };
    field("broker_cpu_s", json_number(broker(nullptr)));
    field("broker_user_s", json_number(broker(&CpuTimes::user)));
    field("broker_sys_s", json_number(broker(&CpuTimes::system)));
    field("broker_cpu_s_per_million", json_number(cpu_per_million(r)));
    field("broker_user_s_per_million", json_number(cpu_per_million(r, &CpuTimes::user)));
    field("load_cpu_s", json_number(r.load_cpu_s));
    field("rss_before_kb", json_number(rss(r.rss_before_kb)));
    field("rss_after_kb", json_number(rss(r.rss_after_kb)));
    field("rss_per_connection_bytes", json_number(rss_per_connection(r), "%.0f"));
    field("broker_write_bytes", r.broker_write_bytes ? count(*r.broker_write_bytes) : "null");
    field("write_bytes_per_msg", json_number(write_bytes_per_message(r), "%.1f"));
    field("error", r.error.empty() ? "null" : json_string(r.error));
    return j + "}";
}

std::string human_line(const Report &r) {
    char text[1024];
    std::string line;
    const auto cpu = [&] {
        std::string s;
        if (r.broker_cpu) {
            std::snprintf(text, sizeof text, "; broker %.2f CPU-s (%.2f user)",
                          r.broker_cpu->total(), r.broker_cpu->user);
            s += text;
            if (auto per = cpu_per_million(r)) {
                std::snprintf(text, sizeof text, " = %.3f CPU-s per million", *per);
                s += text;
            }
        }
        std::snprintf(text, sizeof text, "; load %.2f CPU-s", r.load_cpu_s);
        return s + text;
    };
    char rate[64];
    if (r.rate_target > 0) {
        std::snprintf(rate, sizeof rate, "at %.0f msg/s", r.rate_target);
    } else {
        std::snprintf(rate, sizeof rate, "flat out");
    }
    if (r.scenario == "connect" || r.scenario == "idle") {
        std::snprintf(text, sizeof text,
                      "%s %" PRIu64 " connections: %" PRIu64 " connected, %" PRIu64 " failed",
                      r.scenario.c_str(), uint64_t(r.connections), r.connected, r.failed);
        line = text;
        if (r.scenario == "connect") {
            std::snprintf(text, sizeof text, " in %.3f s = %.0f connections/s", r.interval_s,
                          per_second(double(r.connected), r.interval_s).value_or(0));
            line += text;
            line += cpu(); // after the append: cpu() reuses `text`
        } else {
            std::snprintf(text, sizeof text, ", %" PRIu64 " still open", r.still_open);
            line += text;
            if (auto per = rss_per_connection(r)) {
                std::snprintf(text, sizeof text,
                              "; broker RSS %" PRIu64 " kB -> %" PRIu64 " kB = %.0f bytes per "
                              "connection",
                              *r.rss_before_kb, *r.rss_after_kb, *per);
                line += text;
            }
        }
    } else if (r.scenario == "durable") {
        std::snprintf(text, sizeof text,
                      "durable qos%d MQTT %s %u->%s %uB %s: %" PRIu64 " published, %" PRIu64
                      " acked in %.2f s = %.0f msg/s",
                      r.qos, r.protocol.c_str(), r.publishers,
                      r.subscribers != 0 ? "1 offline session" : "no subscriber", r.payload, rate,
                      r.published, r.acked, r.interval_s,
                      per_second(double(r.acked), r.interval_s).value_or(0));
        line = text;
        if (r.drained) {
            std::snprintf(text, sizeof text,
                          "; resumed: %" PRIu64 " drained in %.2f s, %" PRIu64 " lost, %" PRIu64
                          " reordered",
                          *r.drained, r.drain_s, r.lost, r.reordered);
            line += text;
            if (r.drain_write_bytes && *r.drained != 0) {
                std::snprintf(text, sizeof text, " (broker wrote %.0f bytes per message drained)",
                              double(*r.drain_write_bytes) / double(*r.drained));
                line += text;
            }
        }
        if (r.broker_write_bytes) {
            std::snprintf(text, sizeof text, "; broker wrote %.1f MB = %.0f bytes per message",
                          double(*r.broker_write_bytes) / 1e6,
                          write_bytes_per_message(r).value_or(0));
            line += text;
        }
        line += cpu(); // after the append: cpu() reuses `text`
    } else {
        std::snprintf(text, sizeof text,
                      "%s qos%d MQTT %s %u->%u %uB %s: %" PRIu64 " published, %" PRIu64
                      " delivered, %" PRIu64 " lost, %" PRIu64 " reordered in %.2f s = %.0f msg/s",
                      r.scenario.c_str(), r.qos, r.protocol.c_str(), r.publishers, r.subscribers,
                      r.payload, rate, r.published, r.delivered, r.lost, r.reordered, r.interval_s,
                      per_second(double(r.delivered), r.interval_s).value_or(0));
        line = text;
        if (r.latency.count() > 0) {
            std::snprintf(text, sizeof text, "; latency p50 %.0f us, p99 %.0f us, max %.0f us",
                          double(r.latency.percentile(0.5)) / 1e3,
                          double(r.latency.percentile(0.99)) / 1e3, double(r.latency.max()) / 1e3);
            line += text;
        }
        line += cpu(); // after the append: cpu() reuses `text`
    }
    if (!r.error.empty()) {
        line += "; FAILED: " + r.error;
    }
    return line;
}

std::optional<Scenario> parse_scenario(const std::string &name) {
    if (name == "fanin") {
        return Scenario::fanin;
    }
    if (name == "fanout") {
        return Scenario::fanout;
    }
    if (name == "latency") {
        return Scenario::latency;
    }
    if (name == "connect") {
        return Scenario::connect;
    }
    if (name == "idle") {
        return Scenario::idle;
    }
    if (name == "durable") {
        return Scenario::durable;
    }
    return std::nullopt;
}

// Resolves HOST:PORT once, before the loop runs (a name is looked up synchronously).
bool resolve(const std::string &host, uint16_t port, sockaddr_storage &out, std::string &error) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_getaddrinfo_t req;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const std::string service = std::to_string(port);
    const int rc = uv_getaddrinfo(&loop, &req, nullptr, host.c_str(), service.c_str(), &hints);
    bool ok = false;
    if (rc != 0) {
        error = "cannot resolve " + host + ": " + uv_strerror(rc);
    } else {
        std::memcpy(&out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
        uv_freeaddrinfo(req.addrinfo);
        ok = true;
    }
    uv_loop_close(&loop);
    return ok;
}

} // namespace

int run(const Options &options) {
    auto refuse = [](const std::string &why) {
        std::fprintf(stderr, "bench: %s\n", why.c_str());
        return 1;
    };
    const std::optional<Scenario> scenario = parse_scenario(options.scenario);
    if (!scenario) {
        return refuse("unknown scenario '" + options.scenario + "'");
    }
    if (options.payload < kPayloadHeader) {
        return refuse("--payload must be at least 20 bytes (publisher, sequence, timestamp)");
    }
    if (options.qos < 0 || options.qos > 1) {
        return refuse("--qos must be 0 or 1");
    }
    if (options.window == 0 || options.inflight == 0 || options.concurrency == 0) {
        return refuse("--window, --inflight and --concurrency must be positive");
    }
    if (options.inflight > 65535) {
        return refuse("--inflight must be at most 65535 (packet ids)");
    }
    if (*scenario == Scenario::idle && options.broker_pid == 0) {
        return refuse("the idle scenario needs --broker-pid to read the broker's RSS");
    }
    if (*scenario == Scenario::durable && options.qos != 1) {
        return refuse("the durable scenario measures QoS 1 messages that the broker stores for "
                      "an offline session before acknowledging them: pass --qos 1");
    }
    if (!options.subscriber && *scenario != Scenario::durable) {
        return refuse("--no-subscriber applies to the durable scenario only");
    }
    if (options.messages && (options.duration || !(*scenario == Scenario::fanin ||
                                                   *scenario == Scenario::fanout ||
                                                   *scenario == Scenario::latency ||
                                                   *scenario == Scenario::durable))) {
        return refuse("--messages replaces --duration, in the fanin, fanout, latency and "
                      "durable scenarios");
    }
    if (options.messages && *options.messages == 0) {
        return refuse("--messages must be positive");
    }
    if (options.broker_pid != 0 && !process_cpu_times(options.broker_pid)) {
        return refuse("cannot read /proc/" + std::to_string(options.broker_pid) + "/stat");
    }
    if (*scenario == Scenario::durable && options.broker_pid != 0 &&
        !process_write_bytes(options.broker_pid)) {
        return refuse("cannot read /proc/" + std::to_string(options.broker_pid) +
                      "/io for the broker's storage writes");
    }
    mqtt::Version version;
    if (options.protocol == "3.1.1") {
        version = mqtt::Version::v311;
    } else if (options.protocol == "5" || options.protocol == "5.0") {
        version = mqtt::Version::v5;
    } else {
        return refuse("--protocol must be 3.1.1 or 5");
    }
    sockaddr_storage address{};
    std::string error;
    if (!resolve(options.host, options.port, address, error)) {
        return refuse(error);
    }
    std::shared_ptr<const net::TlsContext> tls;
    if (!options.tls_ca.empty()) {
        config::TlsConfig settings;
        settings.ca_file = options.tls_ca;
        settings.server_name =
            options.tls_server_name.empty() ? options.host : options.tls_server_name;
        tls = net::TlsContext::make(net::TlsContext::Role::client, settings, error);
        if (!tls) {
            return refuse("TLS: " + error);
        }
    }
    Runner runner(options, *scenario, version, address, std::move(tls));
    // Each connection is a socket; 10,000 of them need more than the usual soft limit of 1024.
    const uint64_t sockets = uint64_t{runner.total_clients()} + 16;
    const uint64_t limit = raise_open_file_limit(error);
    if (limit < sockets) {
        return refuse("open file limit " + std::to_string(limit) + " is below the " +
                      std::to_string(sockets) + " sockets needed" +
                      (error.empty() ? "" : " (" + error + ")"));
    }
    const Report report = runner.execute();
    const std::string line = human_line(report);
    if (options.json) {
        std::printf("%s\n", to_json(report).c_str());
        std::fprintf(stderr, "%s\n", line.c_str());
    } else {
        std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    if (!report.error.empty() || report.failed > 0 || report.foreign > 0 ||
        (*scenario == Scenario::idle && report.still_open != report.connected)) {
        return 1;
    }
    return report.lost > 0 || report.reordered > 0 ? 2 : 0;
}

} // namespace ferrymq::bench
