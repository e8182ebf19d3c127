// ConsoleServer: the operator console, served by faceaddaptd on [ui] listen: HTML pages (Login,
// Overview, People, Models, Audit) and the JSON API under /api they use (docs/console.md).
//
// WHAT THIS REPRESENTS
//   An HTTP(S) server over a ConsoleBackend (what the daemon knows and does: cameras, store,
//   gallery, models, doors). The server owns access control: users (users.hpp), sessions
//   (sessions.hpp), the CSRF token on every POST/PUT/DELETE, the login throttle
//   (throttle.hpp) and the audit log (audit.hpp). Every page and /api call but /login and
//   /assets/* needs a session (pages redirect to /login, the API answers 401); a state-changing
//   request without its session's CSRF token is refused (403); roles: a viewer sees, an
//   operator also enrolls and erases, an admin also rolls models back (403 otherwise).
//   A request whose Host header names neither the listen host, localhost nor an allowed host
//   is refused (421) before any handler: a DNS-rebinding page cannot reach the console.
//   Everything that came from outside is HTML-escaped (html.hpp) when rendered; every response
//   carries a Content-Security-Policy allowing only this origin's scripts, styles and images.
//   Every asset (CSS, JS) is embedded in the binary: no CDN, no internet.
// WHY cpp-httplib HERE (the metrics endpoint is hand-written, metrics_server.hpp)
//   The console needs what a small poll loop does not have: request bodies (multipart photo
//   uploads), keep-alive for a page's thumbnails, TLS. cpp-httplib (Debian's, with OpenSSL) has
//   them. Its weakness, a thread per connection from a fixed pool that slowloris clients can
//   hold (issue 13), is bounded here: a pool of Options::threads (8) workers, read and write
//   timeouts of 5 s per operation, keep-alive for at most 5 s idle and 100 requests, bodies of at
//   most Options::max_body_bytes (25 MiB). A client that starves the pool starves the console
//   only; /healthz and /metrics stay on their own server, and the console listens on loopback
//   unless configured otherwise (behind a login; meant for a site LAN, not the internet).
// THREAD SAFETY
//   Construct and destroy on one thread. The backend is called from the server's worker threads
//   (several at once): it must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "faceadapt/ui/sessions.hpp"
#include "faceadapt/ui/throttle.hpp"

namespace faceadapt::ui {

// One uploaded photo.
struct UploadedPhoto {
    std::string filename;  // as the client named it (untrusted: escaped when shown)
    std::string bytes;
};

// What became of one photo of an enrollment.
struct EnrollResult {
    std::string filename;
    bool ok = false;
    std::string reason;      // why refused (the enrollment gate's words)
    std::int64_t entry = 0;  // the gallery entry when enrolled
};

// What the console shows and does; implemented by the daemon (daemon/console_backend.hpp).
// Every member may be called from several threads at once.
class ConsoleBackend {
public:
    virtual ~ConsoleBackend() = default;
    // docs/console.md, "GET /api/overview": {"site", "status", "cameras": [...], "store": {...},
    // "model": {...}, "doors": [...]}.
    virtual nlohmann::json overview() = 0;
    // {"people": [{"name", "photos": [{"id", "enrolled", "source", "by", "score"}]}]}
    virtual nlohmann::json people() = 0;
    // Enrolls `name` from the photos (the enrollment gate applies to each); `by` is the console
    // user, recorded with each entry. throws std::invalid_argument for a bad name (says why).
    virtual std::vector<EnrollResult> enroll(const std::string& name, const std::vector<UploadedPhoto>& photos,
                                             const std::string& by) = 0;
    // Erases a person: gallery entries and their photos (and what the backend keeps named for
    // them). Returns the entries removed (0: unknown).
    virtual int erase(const std::string& name) = 0;
    // Removes one enrolled photo. false when no such entry.
    virtual bool remove_photo(std::int64_t entry_id) = 0;
    // {"current", "previous", "versions": [{"version", "origin", "created", "published", "meta"}], "history": [...]}
    virtual nlohmann::json models() = 0;
    // Starts a rollback to `version` (the daemon's existing rollback path). Returns what it did
    // ("rollback to version 2 started"). throws std::invalid_argument when version is not stored.
    virtual std::string rollback(int version) = 0;
    // JPEG thumbnails; nullopt when unknown.
    virtual std::optional<std::string> crop_jpeg(std::int64_t crop_id) = 0;
    virtual std::optional<std::string> gallery_jpeg(std::int64_t entry_id) = 0;
    // The camera's latest full frame (downscaled) as JPEG; nullopt when none yet.
    virtual std::optional<std::string> snapshot_jpeg(const std::string& camera) = 0;
    // The stored crops grouped by the latest clustering, tracks kept together (docs/console.md,
    // "GET /api/unknown"): {"groups": [{"key", "ref", "camera", "track", "tracks", "clusters",
    // "merged", "track_label", "count", "first", "last", "crops": [ids], "named"}], "crops",
    // "group_count", "clustering": {"crops", "time"} or null}, largest groups first, at most
    // `max_groups`.
    virtual nlohmann::json unknown_faces(std::size_t max_groups) = 0;
    // "Who is this?": enrolls `name` from stored crops (and records them as must-links for the
    // learner). throws std::invalid_argument for a bad name or no such crop.
    virtual std::vector<EnrollResult> name_crops(const std::string& name, const std::vector<std::int64_t>& crops,
                                                 const std::string& by) = 0;
    // "Not this person": records cannot-links between the crops and `name` for the learner.
    // Returns the rows recorded. throws std::invalid_argument for a bad name or no such crop.
    virtual int not_person(const std::string& name, const std::vector<std::int64_t>& crops) = 0;
    // "Merge": the groups holding these crops (one crop of each, 2 to 20) are one person: records
    // must-links for the learner and shows them as one group. Returns the rows recorded.
    // throws std::invalid_argument for a bad count or no such crop.
    virtual int merge_groups(const std::vector<std::int64_t>& crops) = 0;
};

class ConsoleServer {
public:
    struct Options {
        std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
        std::filesystem::path cert_file;        // both set: HTTPS (cookies get Secure)
        std::filesystem::path key_file;
        std::filesystem::path users_file;       // users.hpp (read again whenever it changes)
        std::filesystem::path audit_file;       // audit.hpp
        std::string site;                       // shown in the title
        // Host header names accepted beside localhost, 127.0.0.1, [::1] and the listen host
        // (compared without the port, case-insensitive); any other gets 421 before any handler.
        std::vector<std::string> allowed_hosts;
        int threads = 8;
        std::size_t max_body_bytes = 25u << 20;
        std::chrono::seconds io_timeout{5};
        SessionStore::Limits sessions;
        LoginThrottle::Limits throttle;
    };

    // Binds and starts serving on its own threads.
    // requires: `backend` outlives this object.
    // throws std::runtime_error naming the address (cannot bind) or the certificate/key files.
    ConsoleServer(Options options, ConsoleBackend& backend);
    // Stops accepting, finishes the requests in hand, joins its threads.
    ~ConsoleServer();
    ConsoleServer(const ConsoleServer&) = delete;
    ConsoleServer& operator=(const ConsoleServer&) = delete;

    int port() const;
    bool tls() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::thread thread_;
};

}  // namespace faceadapt::ui
