// Internal: a small RAII layer over sqlite3 for the crop store and the gallery.
//
// WHAT THIS REPRESENTS
//   Database owns one sqlite3 connection; Statement owns one prepared statement; Transaction is
//   a scope guard (BEGIN ... COMMIT, ROLLBACK when destroyed without commit()).
//   Every failure throws SqliteError naming the database file, SQLite's message and, where the
//   OS reported one, the errno text ("No space left on device"); code() is SQLite's extended
//   result code, so callers can tell a damaged file (corruption()) from a fault of the disk,
//   the permissions or a lock, which must never be treated as damage.
// THREAD SAFETY
//   A connection is used by one thread at a time (the owners hold a mutex or one per thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace faceadapt::quality::sql {

class SqliteError : public std::runtime_error {
public:
    SqliteError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
    // SQLite's extended result code (SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_CORRUPT, ...).
    int code() const { return code_; }
    // True only when SQLite says the file itself is damaged (SQLITE_CORRUPT, SQLITE_NOTADB).
    // I/O errors, a full disk, locks, permissions and out-of-memory are all false: the file may
    // be perfectly good and must be left alone.
    bool corruption() const;
private:
    int code_;
};

class Database;

class Statement {
public:
    Statement(Database& db, std::string_view sql);
    ~Statement();
    Statement(Statement&&) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, double value);
    Statement& bind(int index, const std::string& value);
    // Steps once: true while a row is available.
    bool step();
    // Runs to completion (for statements without results).
    void run();
    void reset();
    std::int64_t column_int(int i) const;
    double column_double(int i) const;
    std::string column_text(int i) const;
private:
    Database* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

class Database {
public:
    enum class Mode { read_write_create, read_only };
    // throws SqliteError naming the file.
    Database(const std::filesystem::path& file, Mode mode);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(std::string_view sql);
    std::int64_t last_insert_rowid() const;
    int changes() const;
    // "ok" when PRAGMA quick_check passes, otherwise its first message.
    std::string quick_check();
    const std::filesystem::path& file() const { return file_; }
    sqlite3* handle() const { return db_; }
    [[noreturn]] void fail(const std::string& what, int code) const;
private:
    std::filesystem::path file_;
    sqlite3* db_ = nullptr;
};

class Transaction {
public:
    // immediate: take the write lock now (writers), otherwise a deferred read transaction.
    Transaction(Database& db, bool immediate);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();
private:
    Database& db_;
    bool done_ = false;
};

}  // namespace faceadapt::quality::sql
