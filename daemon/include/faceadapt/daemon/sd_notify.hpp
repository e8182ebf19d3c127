// SystemdNotifier: the sd_notify(3) protocol for a Type=notify service.
//
// WHAT THIS REPRESENTS
//   The daemon's side of systemd's notification socket: READY=1 once cameras and the metrics
//   endpoint are up, STATUS=<one line> as things change, WATCHDOG=1 from the main loop,
//   RELOADING=1 around SIGHUP and STOPPING=1 on shutdown. When NOTIFY_SOCKET is unset (run by
//   hand, in tests) every call is a no-op. Built without libsystemd, it is always a no-op.
// THREAD SAFETY
//   Every member may be called from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace faceadapt::daemon {

class SystemdNotifier {
public:
    // Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID (sd_watchdog_enabled) once.
    SystemdNotifier();

    bool enabled() const { return enabled_; }
    // The interval systemd expects WATCHDOG=1 within; empty when the watchdog is off.
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

    void ready(const std::string& status = {}) const;
    void status(const std::string& line) const;
    void watchdog() const;
    void reloading() const;
    void stopping() const;

    // Sends a raw notification (e.g. "READY=1\nSTATUS=x"); returns false when not sent.
    bool notify(const std::string& message) const;

private:
    bool enabled_ = false;
    std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace faceadapt::daemon
