// A small tmpfs mounted for one test, for full-disk cases on a real filesystem.
//
// WHAT THIS REPRESENTS
//   mount -t tmpfs -o size=<kib>k on a fresh folder under the temp dir; unmounted and removed
//   by the destructor. fill() writes one filler file until the filesystem answers ENOSPC (the
//   disk is then 100% full: `df` shows 0 available); free() deletes it.
// ERRORS
//   mounted() is false (reason() says why) where the machine cannot mount (not root, no
//   CAP_SYS_ADMIN, a container); tests then skip with that message (FACEADAPT_REQUIRE_MOUNT).
// THREAD SAFETY
//   One thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace faceadapt::test {

class SmallMount {
public:
    explicit SmallMount(std::uint64_t size_kib);
    ~SmallMount();
    SmallMount(const SmallMount&) = delete;
    SmallMount& operator=(const SmallMount&) = delete;

    bool mounted() const { return mounted_; }
    const std::string& reason() const { return reason_; }
    const std::filesystem::path& path() const { return path_; }

    // Fills the filesystem to 100% with <path>/filler; returns the bytes it wrote.
    // throws std::runtime_error when a write fails with anything but ENOSPC.
    std::uint64_t fill();
    // Deletes the filler (space is back).
    void free();
    // Remounts read-only (every write then fails with EROFS) or back read-write.
    // throws std::runtime_error with the errno text when the remount fails.
    void set_read_only(bool read_only);
    // Bytes available to an unprivileged writer now (statvfs f_bavail * f_frsize).
    std::uint64_t available() const;

private:
    std::filesystem::path path_;
    bool mounted_ = false;
    std::string reason_;
    std::string options_;
};

}  // namespace faceadapt::test

// Skips the current test with the reason when the SmallMount could not be mounted.
#define FACEADAPT_REQUIRE_MOUNT(m)                                                              \
    do {                                                                                        \
        if (!(m).mounted()) GTEST_SKIP() << "needs a small tmpfs mount: " << (m).reason();      \
    } while (0)
