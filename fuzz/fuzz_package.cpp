// libFuzzer: package files. A file that parses is re-signed with the harness's own key and
// fully verified, so the checks behind the signature (payload size, chunk and part SHA-256s,
// the gallery part) meet arbitrary input too: what a holder of the signing key could send.
#include <cstdint>
#include <string>
#include <string_view>

#include "faceadapt/publish/package.hpp"

namespace fp = faceadapt::publish;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const fp::SigningKey key = fp::SigningKey::generate();
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        fp::Package pkg = fp::Package::from_bytes(bytes, "fuzz.fapkg");
        (void)pkg.to_bytes();
        pkg.signed_manifest.signature = key.sign(pkg.signed_manifest.manifest_json);
        pkg.signed_manifest.key_id = key.public_key().key_id();
        const fp::Manifest m = fp::verify_package(pkg, key.public_key());
        for (std::size_t i = 0; i < m.chunk_count(); ++i) (void)pkg.chunk(i);
        (void)pkg.gallery();
    } catch (const fp::PackageError&) {
    } catch (const std::runtime_error&) {
    }
    return 0;
}
