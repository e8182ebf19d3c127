// libFuzzer: what a door agent decodes from broker messages before any state change: the topic
// (chunk / state topics), the manifest envelope, the manifest inside it, a door state.
// Signature checks use a fixed key, so a fuzzed envelope never verifies (as on a real broker
// without the signing key); the decoders behind it are fuzzed in fuzz_package.
#include <cstdint>
#include <string>
#include <string_view>

#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"

namespace fp = faceadapt::publish;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    static const fp::Topics topics("site1");
    static const fp::PublicKey key = fp::SigningKey::generate().public_key();
    (void)topics.parse_chunk(text);
    (void)topics.parse_door_state(text);
    try {
        const auto sm = fp::SignedManifest::parse_envelope(text);
        try {
            (void)fp::Manifest::parse(sm.manifest_json);
        } catch (const fp::PackageError&) {
        }
        try {
            (void)sm.verify(key);
        } catch (const fp::PackageError&) {
        }
        (void)sm.envelope();
    } catch (const fp::PackageError&) {
    }
    try {
        const auto m = fp::Manifest::parse(text);
        (void)m.to_json();
    } catch (const fp::PackageError&) {
    }
    try {
        const auto st = fp::DoorState::parse(text);
        (void)st.to_json();
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
