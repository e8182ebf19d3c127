// The check a model file's torch archive passes before libtorch parses it (internal to learner/).
//
// WHY
//   libtorch 1.13's reader trusts the archive: a pickle string length, a memo index or a zip
//   entry's uncompressed size is allocated as read (fuzz_model_file found a 4 GB allocation from
//   a 1930-byte file with a correct CRC), and a tensor storage's element count is taken from the
//   pickle, not from the size of the record behind it (a read past the record's buffer). The CRC
//   only catches accidents; a hostile or buggy writer computes it. So the archive is checked here
//   against what torch::serialize::OutputArchive writes, and anything else is refused.
// WHAT IS CHECKED (hand-written: libtorch exports no zip or pickle validator, and a general zip
// library would accept the oversized and misplaced entries that are refused here)
//   - zip: end-of-central-directory (zip64 too) inside the buffer, at most kMaxRecords entries,
//     every entry stored (method 0, its size == its stored size) or deflated (method 8, libtorch
//     compresses its code records: at most 16 MiB inflated, inflated here to exactly the declared
//     size, since libtorch allocates that size first), not encrypted, its local header and data
//     inside the buffer before the central directory, names unique, short and free of NUL.
//   - every *.pkl / *_pkl record: walked opcode by opcode as libtorch's unpickler would, every
//     length-prefixed argument inside the record, memo indexes dense, and every tensor storage
//     reference ('storage', torch.<T>Storage, key, device, numel) naming a record of this archive
//     that holds at least numel * sizeof(T) bytes.
//   - every code/*.py record: the plain class body OutputArchive writes (class line, the
//     __parameters__ / __buffers__ / __annotations__ lines, `name : Type` where Type is a name
//     or a flat `Tuple[name, ...]` as an optimiser's options write it), nothing the TorchScript
//     compiler would have to recurse into.
#pragma once

#include <cstddef>
#include <string_view>

namespace faceadapt::learner::detail {

constexpr std::size_t kMaxArchiveRecords = 4096;

// ensures:  returns when `zip` is an archive torch::serialize::InputArchive can read without
//           allocating more than about its own size and without reading outside its records.
// throws:   std::runtime_error saying what is wrong (without a file name; the caller adds it).
// Thread safety: pure function.
void check_torch_archive(std::string_view zip);

}  // namespace faceadapt::learner::detail
