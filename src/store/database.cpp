// SPDX-License-Identifier: Apache-2.0
#include "store/database.hpp"

namespace ferrymq::store {

std::string error_name(int code) {
    // The primary codes by name; an extended code adds what sqlite3_errstr says, since
    // SQLite has no API for the constant's name.
    static constexpr const char *kPrimary[] = {
        "SQLITE_OK",       "SQLITE_ERROR",     "SQLITE_INTERNAL", "SQLITE_PERM",
        "SQLITE_ABORT",    "SQLITE_BUSY",      "SQLITE_LOCKED",   "SQLITE_NOMEM",
        "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",    "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND", "SQLITE_FULL",      "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",    "SQLITE_SCHEMA",    "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH", "SQLITE_MISUSE",    "SQLITE_NOLFS",    "SQLITE_AUTH",
        "SQLITE_FORMAT",   "SQLITE_RANGE",     "SQLITE_NOTADB",   "SQLITE_NOTICE",
        "SQLITE_WARNING",
    };
    const int primary = code & 0xFF;
    std::string name = primary < static_cast<int>(std::size(kPrimary))
                           ? kPrimary[primary]
                           : "SQLITE_" + std::to_string(primary);
    if (code != primary) {
        name += " (extended " + std::to_string(code) + ": " + sqlite3_errstr(code) + ")";
    }
    return name;
}

int Database::open(const std::string &path) {
    close();
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        open_error_ = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        close();
        return rc;
    }
    // Extended codes tell a full disk (SQLITE_FULL) from a failed write (SQLITE_IOERR_*).
    sqlite3_extended_result_codes(db_, 1);
    return SQLITE_OK;
}

void Database::close() {
    if (db_ != nullptr) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

int Database::exec(const char *sql) {
    return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
}

Statement Database::prepare(std::string_view sql, int *rc) {
    sqlite3_stmt *stmt = nullptr;
    const int result = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != nullptr) {
        *rc = result;
    }
    return Statement(result == SQLITE_OK ? stmt : nullptr);
}

int64_t Database::query_int(const char *sql) {
    Statement st = prepare(sql);
    if (!st || st.step() != SQLITE_ROW) {
        return -1;
    }
    return st.column_int(0);
}

std::string Database::message() const {
    return db_ ? sqlite3_errmsg(db_) : open_error_;
}

} // namespace ferrymq::store
