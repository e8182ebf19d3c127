#include "faceadapt/daemon/sd_notify.hpp"

#include <cstdlib>

#ifdef FACEADAPT_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace faceadapt::daemon {

SystemdNotifier::SystemdNotifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && *socket != '\0';
#ifdef FACEADAPT_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
#else
    enabled_ = false;
#endif
}

bool SystemdNotifier::notify(const std::string& message) const {
    if (!enabled_) return false;
#ifdef FACEADAPT_HAVE_SYSTEMD
    return sd_notify(0, message.c_str()) > 0;
#else
    return false;
#endif
}

namespace {
std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n') c = ' ';
    return s;
}
}  // namespace

void SystemdNotifier::ready(const std::string& status) const {
    notify(status.empty() ? "READY=1" : "READY=1\nSTATUS=" + one_line(status));
}
void SystemdNotifier::status(const std::string& line) const { notify("STATUS=" + one_line(line)); }
void SystemdNotifier::watchdog() const { notify("WATCHDOG=1"); }
void SystemdNotifier::reloading() const { notify("RELOADING=1"); }
void SystemdNotifier::stopping() const { notify("STOPPING=1"); }

}  // namespace faceadapt::daemon
