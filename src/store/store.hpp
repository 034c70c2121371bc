// SPDX-License-Identifier: Apache-2.0
// The durable state of the broker in one SQLite database (<data_dir>/ferrymq.db): retained
// messages and persistent sessions. The broker core reports each change through the
// broker::Persistence interface; the Store keeps the changes of one loop turn (or flush
// interval) in memory and writes them in one transaction from commit(), so a busy broker
// pays one commit per batch, never one per message.
//
// Queued messages are written the same way they arrive, a batch at a time: the messages
// one commit adds to one session's queue (a bridge's queue is a session's) share one row
// of `batches`, packed (topics and publishers written once per batch, no per-message SQL
// row), so a queued message costs little more than its payload on disk. A message's id
// is its batch's id << 16 | its index in the batch. A message delivered out of a batch
// that still holds others is recorded in `batch_gone`; the row goes when its last message
// does. See store.cpp for the record format.
//
// Owned by app::Server; opened before the Broker is restored and closed after the loop
// ended. Everything runs on the loop thread.
#pragma once

#include "broker/persistence.hpp"
#include "broker/session.hpp"
#include "store/database.hpp"
#include "util/log.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace ferrymq::store {

struct StoreOptions {
    std::string dir;                // the data directory; the database is dir + "/ferrymq.db"
    bool power_safe = false;        // synchronous=FULL (power loss) instead of NORMAL (crash)
    uint64_t max_size = 0;          // bytes of pages in use before full() is true, 0 = no limit
    int64_t wall_minus_loop_ms = 0; // wall clock - loop clock, to store deadlines as dates
};

// Figures for logs, $SYS and the benchmark.
struct StoreStats {
    uint64_t commits = 0;           // transactions committed
    uint64_t failed_commits = 0;    // transactions rolled back on an SQLite error
    uint64_t changes = 0;           // changes reported by the broker
    uint64_t rows_written = 0;      // statements run inside committed transactions
    uint64_t longest_commit_us = 0; // the longest commit() call, microseconds
    uint64_t total_commit_us = 0;   // all commit() calls together
    uint64_t size_bytes = 0;        // pages in use after the latest commit (when measured)
    uint64_t expired_at_load = 0;   // messages and retained messages whose expiry passed
    bool degraded = false;          // the latest commit failed: state lives in memory only
    int last_error = 0;             // SQLite result code of the latest failure
};

class Store final : public broker::Persistence {
  public:
    explicit Store(util::Log &log) : log_(log) {}
    ~Store() override;
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    // Opens (or creates) the database, applies schema migrations and takes the exclusive
    // lock, so a second broker on the same data directory fails here. A file that is not
    // a database, or fails its integrity check, is moved aside with a log line and a new
    // one created. Returns false after logging why.
    bool open(const StoreOptions &options);

    // Reads back what was stored, after deleting messages whose expiry passed. Deadlines
    // are converted to the loop clock, where `now_loop_ms` is now.
    bool load(std::vector<broker::MessagePtr> &retained,
              std::vector<broker::RestoredSession> &sessions, uint64_t now_loop_ms);

    // Whether changes wait for commit().
    bool pending() const { return !ops_.empty(); }
    // Deletes of delivered messages waiting for a commit. They never make one by
    // themselves: losing them in a crash only means a redelivery, which QoS 1 allows and
    // QoS 2 handles by its packet id. The owner commits them with the next commit, or when
    // there are many of them, or from its timer.
    size_t lazy_deletes() const { return lazy_deletes_.size(); }
    // Writes every pending change in one transaction. On an SQLite error the transaction
    // is rolled back, logged with the error's name and counted, and the store is degraded
    // (durable state is in memory only) until resync() succeeds. Returns success.
    bool commit();
    // Rewrites the whole database from the broker's state: `write_all` reports every
    // retained message and persistent session again. Used to leave the degraded state.
    bool resync(const std::function<void()> &write_all);
    // Closes the database. Pending changes are dropped: commit() first to keep them.
    void close();

    const StoreStats &stats() const { return stats_; }
    std::string path() const { return options_.dir + "/ferrymq.db"; }

    // broker::Persistence
    void retained_set(const broker::MessagePtr &message) override;
    void retained_clear(const std::string &topic) override;
    void session_save(const broker::Session &session) override;
    void session_delete(const std::string &client_id) override;
    void subscription_save(const std::string &client_id, const std::string &filter,
                           const broker::SubscriptionOptions &options) override;
    void subscription_delete(const std::string &client_id, const std::string &filter) override;
    uint64_t message_add(const std::string &client_id, const broker::Delivery &delivery,
                         std::string_view shared_group) override;
    void message_sent(uint64_t id, uint16_t packet_id, bool released) override;
    void message_delete(uint64_t id) override;
    void qos2_add(const std::string &client_id, uint16_t packet_id) override;
    void qos2_delete(const std::string &client_id, uint16_t packet_id) override;
    uint64_t changes() const override { return stats_.changes; }
    bool full() const override { return full_; }
    broker::StoreStatus status() const override {
        return {stats_.commits, stats_.failed_commits, stats_.size_bytes, stats_.longest_commit_us,
                stats_.degraded};
    }

  private:
    enum class OpType : uint8_t {
        retained_set,
        retained_clear,
        session_save,
        session_delete,
        subscription_save,
        subscription_delete,
        message_add,
        message_sent,
        message_delete,
        qos2_add,
        qos2_delete,
        clear_all,
        batch_write,  // a: index in pending_batches_
        batch_delete, // id: the batch
        legacy_clear, // the version 2 messages table, once its rows were read as batches
    };
    // One change waiting for commit(). Fields are used by type; messages are shared, not
    // copied, until they are encoded inside the transaction.
    struct Op {
        OpType type;
        bool cancelled = false; // superseded by a later change in the same batch
        std::string key;        // client id or topic
        std::string key2;       // filter; a queued message's shared subscription group
        uint64_t id = 0;        // message id
        int64_t a = 0, b = 0;   // packet id / released; session version / expiry; options
        broker::MessagePtr message;
        uint8_t qos = 0;
        bool retain = false;
        std::vector<uint32_t> subscription_ids;
        std::vector<uint8_t> blob; // the will of a session row
        int64_t expires_at = 0, will_delay = 0, will_at = 0;
        bool online = false;
    };

    // Queued messages of one session added by one commit (see the top of this file).
    static constexpr unsigned kBatchShift = 16;
    static constexpr uint32_t kBatchMaxMessages = 4096;
    static constexpr size_t kBatchMaxBytes = size_t{1} << 20;
    struct PendingBatch {
        uint64_t id = 0;
        std::string client_id;
        std::vector<size_t> ops; // its message_add ops, in index order
        size_t bytes = 0;        // about what it will take
    };
    // A batch written (or being written): how many of its messages are still queued.
    struct BatchState {
        uint32_t live = 0;
        std::string client_id;
    };

    bool open_file(bool *corrupt);
    bool migrate();
    bool prepare_statements();
    void move_aside();
    bool apply(Op &op);
    void measure_size();
    int64_t to_wall(uint64_t loop_ms) const;
    uint64_t to_loop(int64_t wall_ms) const;
    Op &push(OpType type);
    uint64_t add_message(const std::string &client_id, const broker::MessagePtr &message,
                         uint8_t qos, bool retain, std::span<const uint32_t> subscription_ids,
                         std::string_view shared_group);
    // SQLITE_DONE once written, SQLITE_OK when none of its messages is left to write.
    int write_batch(const PendingBatch &batch);
    // Turns the lazy deletes into gone records and deletes of emptied batches.
    void settle_deletes();
    void fail(const char *what, int rc);

    util::Log &log_;
    StoreOptions options_;
    Database db_;
    std::vector<Op> ops_;
    std::vector<uint64_t> lazy_deletes_;                       // message ids, see lazy_deletes()
    std::unordered_map<uint64_t, size_t> pending_adds_;        // message id -> op index
    std::unordered_map<std::string, size_t> pending_retained_; // topic -> op index
    std::vector<PendingBatch> pending_batches_;                // batches this commit writes
    std::unordered_map<std::string, size_t> open_batches_;     // client id -> pending batch
    std::unordered_map<uint64_t, BatchState> batches_;         // batch id -> state
    uint64_t next_batch_ = 1;
    bool full_ = false;
    StoreStats stats_;
    std::vector<uint8_t> scratch_; // encoding buffer reused by every commit
    std::vector<uint8_t> records_; // a batch's records, reused by every commit

    Statement begin_, commit_, rollback_;
    Statement retained_set_, retained_clear_, session_save_, session_delete_[6];
    Statement subscription_save_, subscription_delete_;
    Statement batch_write_, batch_delete_[3], gone_add_, sent_set_, sent_clear_;
    Statement qos2_add_, qos2_delete_;
};

} // namespace ferrymq::store
