// libFuzzer: the gallery part decoder, then matching a probe against what it decoded.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/package.hpp"

namespace fp = faceadapt::publish;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const fp::Gallery g = fp::decode_gallery(bytes, 0.6);
        // decode_gallery refuses NaN/Inf (finding-nan-embedding, issue 13): what it returns is finite.
        for (const auto& e : g.entries)
            for (float x : e.embedding)
                if (!std::isfinite(x)) std::abort();
        fp::Embedding probe{};
        probe[0] = 1.0f;
        const fp::MatchResult r = fp::match_gallery(g, probe);
        if (!g.entries.empty() && r.name.empty()) std::abort();  // a non-empty gallery has a nearest entry
        // Encoding what was decoded gives bytes that decode to the same entries.
        const fp::Gallery back = fp::decode_gallery(fp::encode_gallery(g), 0.6);
        if (back.entries.size() != g.entries.size()) std::abort();
    } catch (const fp::PackageError&) {
    }
    return 0;
}
