// SPDX-License-Identifier: Apache-2.0
// RAII over the SQLite C API: a Database owns one connection, a Statement one prepared
// statement. Nothing here throws or logs; every call returns the SQLite result code and
// error_name() turns it into the constant's name ("SQLITE_FULL") for log lines.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ferrymq::store {

// "SQLITE_FULL", "SQLITE_IOERR_WRITE", ... for a (primary or extended) result code.
std::string error_name(int code);

// One prepared statement. Owned by the Store that prepared it; finalized on destruction,
// which must come before its Database closes.
class Statement {
  public:
    Statement() = default;
    explicit Statement(sqlite3_stmt *stmt) : stmt_(stmt) {}
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(Statement &&other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
    Statement &operator=(Statement &&other) noexcept {
        if (this != &other) {
            sqlite3_finalize(stmt_);
            stmt_ = other.stmt_;
            other.stmt_ = nullptr;
        }
        return *this;
    }
    Statement(const Statement &) = delete;
    Statement &operator=(const Statement &) = delete;

    explicit operator bool() const { return stmt_ != nullptr; }

    // Parameters are 1-based, as in SQL. Text and blobs are copied by SQLite only when the
    // statement outlives them; callers step before the bound data goes away.
    void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
    void bind_text(int index, std::string_view text) {
        sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    }
    void bind_blob(int index, std::span<const uint8_t> blob) {
        sqlite3_bind_blob(stmt_, index, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
    }
    void bind_null(int index) { sqlite3_bind_null(stmt_, index); }

    // SQLITE_ROW while rows come, SQLITE_DONE at the end, an error code otherwise.
    int step() { return sqlite3_step(stmt_); }
    // Runs a statement that returns no rows and makes it ready for the next use: the
    // result code, SQLITE_DONE on success.
    int run() {
        const int rc = sqlite3_step(stmt_);
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        return rc;
    }
    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

    int64_t column_int(int column) const { return sqlite3_column_int64(stmt_, column); }
    bool column_is_null(int column) const {
        return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
    }
    std::string_view column_text(int column) const {
        const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(stmt_, column));
        return p ? std::string_view(p, sqlite3_column_bytes(stmt_, column)) : std::string_view();
    }
    std::span<const uint8_t> column_blob(int column) const {
        const auto *p = static_cast<const uint8_t *>(sqlite3_column_blob(stmt_, column));
        return p ? std::span<const uint8_t>(p, sqlite3_column_bytes(stmt_, column))
                 : std::span<const uint8_t>();
    }

  private:
    sqlite3_stmt *stmt_ = nullptr;
};

// One SQLite connection, closed on destruction (statements first: see Statement).
class Database {
  public:
    Database() = default;
    ~Database() { close(); }
    Database(const Database &) = delete;
    Database &operator=(const Database &) = delete;

    // Opens or creates the file at `path`. On failure the connection is closed again and
    // the result code returned, with message() holding SQLite's words for it.
    int open(const std::string &path);
    void close();
    bool is_open() const { return db_ != nullptr; }

    // Runs one or more statements without results.
    int exec(const char *sql);
    // Prepares `sql`; an empty Statement (and the code in `rc`) on error.
    Statement prepare(std::string_view sql, int *rc = nullptr);
    // Runs a query returning one integer, e.g. "PRAGMA page_count"; -1 on error.
    int64_t query_int(const char *sql);

    // SQLite's message for the latest failed call on this connection.
    std::string message() const;
    sqlite3 *handle() { return db_; }

  private:
    sqlite3 *db_ = nullptr;
    std::string open_error_; // message() after a failed open, when db_ is gone
};

} // namespace ferrymq::store
