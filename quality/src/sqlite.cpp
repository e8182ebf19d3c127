#include "sqlite.hpp"

#include <sqlite3.h>

#include <cstring>

namespace faceadapt::quality::sql {
namespace {

int extended_code(sqlite3* db, int rc) { return db ? sqlite3_extended_errcode(db) : rc; }

// For failures of an OS call, the errno SQLite saw, e.g. " (errno 28: No space left on device)",
// so that an operator sees the real cause; "" for other failures (the errno would be stale).
std::string os_error(sqlite3* db, int rc) {
    const int primary = extended_code(db, rc) & 0xff;
    const bool os_level = primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_CANTOPEN ||
                          primary == SQLITE_READONLY || primary == SQLITE_PERM;
    const int err = db && os_level ? sqlite3_system_errno(db) : 0;
    return err ? " (errno " + std::to_string(err) + ": " + std::strerror(err) + ")" : "";
}

std::string describe(sqlite3* db, int rc) { return (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + os_error(db, rc); }

}  // namespace

bool SqliteError::corruption() const {
    const int primary = code_ & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

Database::Database(const std::filesystem::path& file, Mode mode) : file_(file) {
    const int flags = mode == Mode::read_only ? SQLITE_OPEN_READONLY
                                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(file.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        const std::string msg = describe(db_, rc);
        const int code = extended_code(db_, rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw SqliteError(file.string() + ": cannot open: " + msg, code);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 10000);
}

Database::~Database() { sqlite3_close_v2(db_); }

void Database::fail(const std::string& what, int code) const {
    throw SqliteError(file_.string() + ": " + what + ": " + describe(db_, code), extended_code(db_, code));
}

void Database::exec(std::string_view sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        msg += os_error(db_, rc);
        throw SqliteError(file_.string() + ": " + std::string(sql.substr(0, 60)) + ": " + msg, extended_code(db_, rc));
    }
}

std::int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

std::string Database::quick_check() {
    Statement st(*this, "PRAGMA quick_check");
    std::string first = "no answer";
    if (st.step()) first = st.column_text(0);
    return first;
}

Statement::Statement(Database& db, std::string_view sql) : db_(&db) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail("prepare \"" + std::string(sql.substr(0, 60)) + "\"", rc);
}
Statement::~Statement() { sqlite3_finalize(stmt_); }
Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }

Statement& Statement::bind(int i, std::int64_t v) {
    if (int rc = sqlite3_bind_int64(stmt_, i, v); rc != SQLITE_OK) db_->fail("bind", rc);
    return *this;
}
Statement& Statement::bind(int i, double v) {
    if (int rc = sqlite3_bind_double(stmt_, i, v); rc != SQLITE_OK) db_->fail("bind", rc);
    return *this;
}
Statement& Statement::bind(int i, const std::string& v) {
    if (int rc = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        rc != SQLITE_OK)
        db_->fail("bind", rc);
    return *this;
}
bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_->fail("step", rc);
}
void Statement::run() {
    while (step()) {
    }
    reset();
}
void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}
std::int64_t Statement::column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
double Statement::column_double(int i) const { return sqlite3_column_double(stmt_, i); }
std::string Statement::column_text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, i)) : std::string();
}

Transaction::Transaction(Database& db, bool immediate) : db_(db) {
    db_.exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}
Transaction::~Transaction() {
    if (!done_) {
        try {
            db_.exec("ROLLBACK");
        } catch (...) {
        }
    }
}
void Transaction::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace faceadapt::quality::sql
