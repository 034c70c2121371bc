// SPDX-License-Identifier: Apache-2.0
// Abuse counters: bans after failed authentications, the connection rate, rate-limited logs.
#include "broker/abuse.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace ferrymq::broker;
using ferrymq::util::Log;
using ferrymq::util::LogLevel;

namespace {

// The lines a Log wrote into a memory stream.
struct CapturedLog {
    char *data = nullptr;
    size_t size = 0;
    std::FILE *file = open_memstream(&data, &size);
    Log log{LogLevel::info, file};
    ~CapturedLog() {
        std::fclose(file);
        std::free(data);
    }
    size_t lines() {
        std::fflush(file);
        return std::count(data, data + size, '\n');
    }
};

} // namespace

TEST_CASE("an address is banned after N failed authentications within the window") {
    CapturedLog out;
    AbuseTracker t(AbuseSettings{3, 60, 300, 0, 10}, out.log);
    CHECK(t.admit("10.0.0.1", 1000));
    t.note("10.0.0.1", AbuseKind::auth_failure, 1000);
    t.note("10.0.0.1", AbuseKind::auth_failure, 2000);
    CHECK(t.admit("10.0.0.1", 2500));
    t.note("10.0.0.1", AbuseKind::auth_failure, 3000);
    CHECK(t.totals().bans == 1);
    CHECK_FALSE(t.admit("10.0.0.1", 4000));
    CHECK(t.totals().refused_banned == 1);
    CHECK(t.admit("10.0.0.2", 4000));           // other addresses are not affected
    CHECK(t.admit("10.0.0.1", 3000 + 300'000)); // the ban ends
    CHECK(t.totals().events[size_t(AbuseKind::auth_failure)] == 3);
}

TEST_CASE("failures spread over more than the window do not ban") {
    CapturedLog out;
    AbuseTracker t(AbuseSettings{2, 10, 300, 0, 10}, out.log);
    t.note("a", AbuseKind::auth_failure, 0);
    t.note("a", AbuseKind::auth_failure, 11'000);
    CHECK(t.totals().bans == 0);
    CHECK(t.admit("a", 12'000));
    t.note("a", AbuseKind::acl_denial, 12'000); // ACL denials never ban
    t.note("a", AbuseKind::acl_denial, 12'001);
    CHECK(t.totals().bans == 0);
}

TEST_CASE("the connection rate per address is limited") {
    CapturedLog out;
    AbuseTracker t(AbuseSettings{0, 60, 300, 2, 10}, out.log);
    CHECK(t.admit("a", 0));
    CHECK(t.admit("a", 1));
    CHECK_FALSE(t.admit("a", 2));
    CHECK(t.admit("b", 2));
    CHECK(t.admit("a", 60'000)); // a new window
    CHECK(t.totals().refused_rate == 1);
}

TEST_CASE("log lines are rate-limited per address and kind, and idle entries pruned") {
    CapturedLog out;
    AbuseTracker t(AbuseSettings{0, 60, 300, 0, 10}, out.log);
    for (int i = 0; i < 100; ++i) {
        t.note("a", AbuseKind::malformed, 1000 + i);
    }
    CHECK(out.lines() == 1);
    t.note("a", AbuseKind::malformed, 12'000); // next interval: one line with the count
    CHECK(out.lines() == 2);
    CHECK(std::string(out.data).find("a: 100 malformed packets") != std::string::npos);
    t.note("b", AbuseKind::malformed, 12'000);
    CHECK(out.lines() == 3);
    CHECK(t.totals().events[size_t(AbuseKind::malformed)] == 102);
    t.prune(12'000 + 61'000);
    // Pruned: the next event logs at once again.
    t.note("a", AbuseKind::malformed, 12'000 + 61'001);
    CHECK(out.lines() == 4);
}
