// libFuzzer: the site file loader. Any text must give a Config or a ConfigError, never a crash,
// and a Config must print (to_toml) to a text that loads again to the same printed text.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "faceadapt/config/config.hpp"

namespace cfg = faceadapt::config;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)cfg::mask_url_credentials(std::string(text));
    (void)cfg::url_secrets(std::string(text));
    std::string printed;
    try {
        printed = cfg::to_toml(cfg::parse_config(text, "/fuzz/site.toml"));
    } catch (const cfg::ConfigError&) {
        return 0;
    }
    // config print's contract: its output is itself a valid site file that prints the same
    // (read under the same name: the first line names the source).
    try {
        const std::string again = cfg::to_toml(cfg::parse_config(printed, "/fuzz/site.toml"));
        if (again != printed) {
            std::fprintf(stderr, "config print is not stable:\n%s\n---\n%s\n", printed.c_str(), again.c_str());
            std::abort();
        }
    } catch (const cfg::ConfigError& e) {
        std::fprintf(stderr, "config print wrote a file that does not load: %s\n%s\n", e.what(), printed.c_str());
        std::abort();
    }
    return 0;
}
