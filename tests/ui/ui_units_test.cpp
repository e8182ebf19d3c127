// ui/: users file, sessions, login throttle, audit log, escaping (real files in a temp folder).
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "faceadapt/ui/audit.hpp"
#include "faceadapt/ui/html.hpp"
#include "faceadapt/ui/sessions.hpp"
#include "faceadapt/ui/throttle.hpp"
#include "faceadapt/ui/users.hpp"
#include "test_support.hpp"

using namespace faceadapt::ui;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(UiUsers, AddSaveLoadVerifyWithArgon2id) {
    faceadapt::test::TempDir dir;
    const fs::path file = users_file(dir.path());
    UserStore store(file);
    store.add("admin", Role::admin, "correct horse battery");
    store.add("view.er", Role::viewer, "another-password");
    store.save();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "the users file must be readable by its owner only";
    ASSERT_EQ(::stat(file.parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    const std::string text = [&] {
        std::ifstream in(file);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    EXPECT_NE(text.find("$argon2id$"), std::string::npos) << text;
    EXPECT_EQ(text.find("correct horse"), std::string::npos) << "the password itself must never be stored";

    const UserStore loaded = UserStore::load(file);
    ASSERT_EQ(loaded.users().size(), 2u);
    const auto ok = loaded.verify("admin", "correct horse battery");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->role, Role::admin);
    EXPECT_FALSE(loaded.verify("admin", "correct horse batterY"));
    EXPECT_FALSE(loaded.verify("nobody", "correct horse battery"));
    EXPECT_EQ(loaded.verify("view.er", "another-password")->role, Role::viewer);
}

TEST(UiUsers, PasswdRemoveAndRefusals) {
    faceadapt::test::TempDir dir;
    UserStore store(users_file(dir.path()));
    store.add("op", Role::operator_, "first-password");
    EXPECT_THROW(store.add("op", Role::viewer, "whatever-pass"), std::invalid_argument);
    EXPECT_THROW(store.add("bad name", Role::viewer, "whatever-pass"), std::invalid_argument);
    EXPECT_THROW(store.add("<script>", Role::viewer, "whatever-pass"), std::invalid_argument);
    EXPECT_THROW(store.add("short", Role::viewer, "1234567"), std::invalid_argument);
    store.set_password("op", "second-password");
    EXPECT_FALSE(store.verify("op", "first-password"));
    EXPECT_TRUE(store.verify("op", "second-password"));
    EXPECT_THROW(store.set_password("ghost", "second-password"), std::invalid_argument);
    EXPECT_TRUE(store.remove("op"));
    EXPECT_FALSE(store.remove("op"));
    EXPECT_THROW(parse_role("root"), std::invalid_argument);
    EXPECT_EQ(parse_role("operator"), Role::operator_);
}

TEST(UiUsers, ACorruptFileIsAnErrorNamingIt) {
    faceadapt::test::TempDir dir;
    const fs::path file = dir.path() / "users.json";
    std::ofstream(file) << "{\"users\": [{\"name\": 3}]}";
    try {
        (void)UserStore::load(file);
        FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
    EXPECT_TRUE(UserStore::load(dir.path() / "absent.json").users().empty());
}

TEST(UiSessions, RandomIdsExpiryAndLimits) {
    SessionStore::Limits limits;
    limits.idle = 10s;
    limits.lifetime = 60s;
    limits.max_sessions = 3;
    SessionStore store(limits);
    const auto t0 = SteadyClock::now();
    const Session a = store.create("ann", Role::viewer, t0);
    EXPECT_EQ(a.id.size(), 64u);
    EXPECT_EQ(a.csrf.size(), 64u);
    EXPECT_NE(a.id, a.csrf);
    const Session b = store.create("bob", Role::admin, t0);
    EXPECT_NE(a.id, b.id);
    ASSERT_TRUE(store.find(a.id, t0 + 9s));
    EXPECT_TRUE(store.find(a.id, t0 + 18s)) << "use within the idle time keeps it alive";
    EXPECT_FALSE(store.find(b.id, t0 + 11s)) << "idle for 11 s > 10 s";
    EXPECT_FALSE(store.find(a.id, t0 + 61s)) << "past its lifetime";
    EXPECT_FALSE(store.find("", t0));
    for (int i = 0; i < 5; ++i) store.create("u" + std::to_string(i), Role::viewer, t0 + 70s + std::chrono::seconds(i));
    EXPECT_EQ(store.size(), 3u);
    const Session c = store.create("carl", Role::viewer, t0 + 100s);
    store.end(c.id);
    EXPECT_FALSE(store.find(c.id, t0 + 100s));
    EXPECT_TRUE(equal_secret(c.csrf, std::string(c.csrf)));
    EXPECT_FALSE(equal_secret(c.csrf, c.csrf.substr(1)));
    EXPECT_FALSE(equal_secret("", ""));
}

TEST(UiThrottle, FiveFreeFailuresThenAGrowingDelay) {
    LoginThrottle throttle;
    const auto t0 = LoginThrottle::Clock::now();
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(throttle.locked("admin", "10.0.0.1", t0)) << "attempt " << i + 1 << " is free";
        throttle.failure("admin", "10.0.0.1", t0);
    }
    const auto first = throttle.locked("admin", "10.0.0.1", t0);
    ASSERT_TRUE(first) << "after 5 failures the next attempt waits";
    EXPECT_EQ(first->count(), 1000);
    EXPECT_TRUE(throttle.locked("admin", "10.9.9.9", t0)) << "per user, from any address";
    EXPECT_TRUE(throttle.locked("other", "10.0.0.1", t0)) << "per address, for any user";
    EXPECT_FALSE(throttle.locked("other", "10.9.9.9", t0));
    throttle.failure("admin", "10.0.0.1", t0 + 1s);
    EXPECT_EQ(throttle.locked("admin", "10.0.0.1", t0 + 1s)->count(), 2000) << "it doubles";
    throttle.failure("admin", "10.0.0.1", t0 + 3s);
    EXPECT_EQ(throttle.locked("admin", "10.0.0.1", t0 + 3s)->count(), 4000);
    EXPECT_FALSE(throttle.locked("admin", "10.0.0.1", t0 + 7s));
    throttle.success("admin", "10.0.0.1");
    EXPECT_EQ(throttle.failures("user:admin"), 0);
    EXPECT_FALSE(throttle.locked("admin", "10.0.0.1", t0 + 7s));
    for (int i = 0; i < 40; ++i) throttle.failure("x", "y", t0);
    EXPECT_EQ(throttle.locked("x", "y", t0)->count(), 15 * 60 * 1000) << "capped at 15 min";
}

TEST(UiThrottle, BoundedKeys) {
    LoginThrottle::Limits limits;
    limits.max_keys = 100;
    LoginThrottle throttle(limits);
    const auto t0 = LoginThrottle::Clock::now();
    for (int i = 0; i < 1000; ++i) throttle.failure("user" + std::to_string(i), "addr", t0 + std::chrono::milliseconds(i));
    EXPECT_EQ(throttle.failures("user:user0"), 0) << "oldest keys dropped";
    EXPECT_EQ(throttle.failures("user:user999"), 1);
}

TEST(UiAudit, AppendsJsonLinesNewestFirstPrintable) {
    faceadapt::test::TempDir dir;
    AuditLog log(audit_file(dir.path()));
    log.append({"admin", "127.0.0.1", "login", {{"role", "admin"}}, true});
    log.append({"admin", "127.0.0.1", "enroll", {{"name", "Ada\n<b>"}, {"photos", 2}}, true});
    log.append({"mallory", "127.0.0.1", "login_failed", nlohmann::json::object(), false});
    struct stat st {};
    ASSERT_EQ(::stat(log.file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    const auto tail = log.tail(2);
    ASSERT_EQ(tail.size(), 2u);
    EXPECT_EQ(tail[0]["action"], "login_failed");
    EXPECT_FALSE(tail[0]["ok"].get<bool>());
    EXPECT_EQ(tail[1]["action"], "enroll");
    EXPECT_EQ(tail[1]["detail"]["name"], "Ada\\x0a<b>") << "control characters made printable (escaped)";
    EXPECT_EQ(tail[1]["detail"]["photos"], 2);
    EXPECT_FALSE(tail[1]["time"].get<std::string>().empty());
    // A torn last line (a crash mid-write) is skipped.
    std::ofstream(log.file(), std::ios::app) << "{\"time\": \"x\", \"act";
    EXPECT_EQ(log.tail(10).size(), 3u);
}

TEST(UiHtml, EscapesEverythingActive) {
    EXPECT_EQ(html_escape("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
    EXPECT_EQ(html_escape("a\"b&c"), "a&quot;b&amp;c");
    EXPECT_EQ(html_escape(std::string("a\x01" "b")), "ab");
    EXPECT_EQ(url_encode("Ada Lovelace/<x>"), "Ada%20Lovelace%2F%3Cx%3E");
}
