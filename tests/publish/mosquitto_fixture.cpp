#include "mosquitto_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace faceadapt::test {

namespace {
void write_text(const std::filesystem::path& file, const std::string& text) {
    std::ofstream out(file);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + file.string());
}

void run_or_throw(const std::string& command) {
    std::string output;
    if (run_command(command, &output) != 0) throw std::runtime_error("`" + command + "` failed:\n" + output);
}

bool port_accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

std::string openssl_key(const std::filesystem::path& key) {
    return "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out '" + key.string() + "'";
}
}  // namespace

Mosquitto::Mosquitto(MosquittoOptions options) : options_(std::move(options)), port_(free_loopback_port()) {
    write_files();
    start();
}

Mosquitto::~Mosquitto() { kill(); }

void Mosquitto::write_files() {
    auto d = dir();
    std::ostringstream conf;
    conf << "listener " << port_ << " 127.0.0.1\n"
         << "persistence false\n"
         << "log_dest file " << (d / "mosquitto.log").string() << "\n"
         << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
         << "max_queued_messages 100000\n"
         << "message_size_limit 0\n";
    if (const passwd* pw = ::getpwuid(::geteuid())) conf << "user " << pw->pw_name << "\n";
    if (options_.users.empty()) {
        conf << "allow_anonymous true\n";
    } else {
        conf << "allow_anonymous false\n" << "password_file " << (d / "passwd").string() << "\n";
        write_text(d / "passwd", "");
        for (const auto& u : options_.users)
            run_or_throw("mosquitto_passwd -b '" + (d / "passwd").string() + "' '" + u.name + "' '" + u.password + "'");
    }
    if (!options_.acl.empty()) {
        write_text(d / "acl", options_.acl);
        conf << "acl_file " << (d / "acl").string() << "\n";
    }
    if (options_.tls) {
        run_or_throw(openssl_key(d / "ca.key"));
        run_or_throw("openssl req -x509 -new -key '" + (d / "ca.key").string() + "' -out '" + ca_file().string() +
                     "' -days 2 -subj '/CN=faceadapt test CA'");
        run_or_throw(openssl_key(d / "server.key"));
        run_or_throw("openssl req -new -key '" + (d / "server.key").string() + "' -out '" + (d / "server.csr").string() +
                     "' -subj '/CN=127.0.0.1'");
        write_text(d / "san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        run_or_throw("openssl x509 -req -in '" + (d / "server.csr").string() + "' -CA '" + ca_file().string() +
                     "' -CAkey '" + (d / "ca.key").string() + "' -CAcreateserial -out '" + (d / "server.crt").string() +
                     "' -days 2 -extfile '" + (d / "san.ext").string() + "'");
        conf << "cafile " << ca_file().string() << "\n"
             << "certfile " << (d / "server.crt").string() << "\n"
             << "keyfile " << (d / "server.key").string() << "\n"
             << "require_certificate " << (options_.require_client_cert ? "true" : "false") << "\n";
    }
    conf << options_.extra_config;
    write_text(d / "mosquitto.conf", conf.str());
}

std::pair<std::filesystem::path, std::filesystem::path> Mosquitto::make_client_cert(const std::string& name) const {
    auto d = dir();
    auto key = d / (name + ".key");
    auto csr = d / (name + ".csr");
    auto crt = d / (name + ".crt");
    run_or_throw(openssl_key(key));
    run_or_throw("openssl req -new -key '" + key.string() + "' -out '" + csr.string() + "' -subj '/CN=" + name + "'");
    run_or_throw("openssl x509 -req -in '" + csr.string() + "' -CA '" + ca_file().string() + "' -CAkey '" +
                 (d / "ca.key").string() + "' -CAcreateserial -out '" + crt.string() + "' -days 2");
    return {crt, key};
}

std::filesystem::path Mosquitto::make_other_ca() const {
    auto d = dir();
    run_or_throw(openssl_key(d / "other-ca.key"));
    run_or_throw("openssl req -x509 -new -key '" + (d / "other-ca.key").string() + "' -out '" + (d / "other-ca.crt").string() +
                 "' -days 2 -subj '/CN=some other CA'");
    return d / "other-ca.crt";
}

// mosquitto lives in /usr/sbin on Debian, which is not on a normal user's PATH.
static std::string mosquitto_executable() {
    for (const char* candidate : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"})
        if (::access(candidate, X_OK) == 0) return candidate;
    return "mosquitto";  // from PATH
}

void Mosquitto::start() {
    if (pid_ > 0) return;
    auto executable = mosquitto_executable();
    auto conf = (dir() / "mosquitto.conf").string();
    auto out = (dir() / "mosquitto.stderr").string();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        for (int other = 3; other < 4096; ++other) ::close(other);  // not the test's client sockets
        ::execlp(executable.c_str(), "mosquitto", "-c", conf.c_str(), static_cast<char*>(nullptr));
        std::fprintf(stderr, "cannot run %s (install the mosquitto package): %s\n", executable.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    wait_ready();
}

void Mosquitto::wait_ready() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("mosquitto exited at start:\n" + log());
        }
        if (port_accepts(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    throw std::runtime_error("mosquitto did not listen on port " + std::to_string(port_) + ":\n" + log());
}

void Mosquitto::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

std::string Mosquitto::url() const {
    return std::string(options_.tls ? "ssl" : "tcp") + "://127.0.0.1:" + std::to_string(port_);
}

std::string Mosquitto::log() const {
    std::string text;
    for (const char* name : {"mosquitto.stderr", "mosquitto.log"}) {
        std::ifstream in(dir() / name);
        std::stringstream ss;
        ss << in.rdbuf();
        text += ss.str();
    }
    return text;
}

config::MqttConfig Mosquitto::mqtt_config(const std::string& user, const std::string& password) const {
    config::MqttConfig c;
    c.broker = url();
    c.username = user;
    c.password = config::Secret(password);
    if (options_.tls) c.ca_file = ca_file();
    c.keepalive_s = 30;
    return c;
}

}  // namespace faceadapt::test
