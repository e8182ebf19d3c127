// The few protocol-buffer wire-format pieces an ONNX file needs: a writer and a bounded reader.
//
// WHAT THIS REPRESENTS
//   ONNX files are protocol buffers (onnx.proto3). faceadapt writes exactly one graph (FaceResNet)
//   and rewrites one kind of field (FLOAT16 initializers -> FLOAT for OpenCV 4.6), so it needs
//   varints, fixed 32-bit values and length-delimited fields, and nothing else. Hand-written on
//   purpose instead of linking libprotobuf + libonnx-dev (Debian has both): those bring protoc
//   code generation into the build and a ~3 MB shared library into the torch-free door, whose
//   only reader of ONNX is OpenCV (which carries its own copy of the ONNX protobuf code);
//   the wire format used here is ~150 lines and is checked against the Debian python3-onnx
//   checker in tests/onnx.
// THREAD SAFETY
//   Plain values; one Writer/Reader per thread.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::onnx::proto {

// Thrown by Reader for a truncated or malformed message; the message names the offset.
class ProtoError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Appends fields to a message buffer. Nested messages are built in their own Writer and added
// with message().
class Writer {
public:
    Writer& varint(std::uint32_t field, std::uint64_t value);  // int32/int64/enum/bool
    Writer& fixed32(std::uint32_t field, std::uint32_t bits);  // float (bits), fixed32
    Writer& bytes(std::uint32_t field, std::string_view value);  // string, bytes, message
    Writer& message(std::uint32_t field, const Writer& nested) { return bytes(field, nested.data()); }
    // Appends an already encoded field (Field::raw) verbatim.
    Writer& raw(std::string_view encoded_field) {
        buffer_.append(encoded_field);
        return *this;
    }
    const std::string& data() const { return buffer_; }

    static void put_varint(std::string& out, std::uint64_t value);

private:
    void tag(std::uint32_t field, WireType type);
    std::string buffer_;
};

// One field as read from a message: for kLengthDelimited `bytes` views the payload inside the
// buffer given to the Reader (which must outlive it); for the others `value` holds the number.
struct Field {
    std::uint32_t number = 0;
    WireType type = kVarint;
    std::uint64_t value = 0;
    std::string_view bytes;
    std::string_view raw;  // the whole field, tag included (to copy it unchanged)
};

// Iterates the fields of one message. Every length is checked against the buffer.
class Reader {
public:
    explicit Reader(std::string_view message) : data_(message) {}
    // ensures: false at the end of the message; otherwise `out` is the next field.
    // throws:  ProtoError for a truncated field, a varint over 10 bytes, a field number 0 or a
    //          wire type faceadapt does not read (groups).
    bool next(Field& out);

private:
    std::uint64_t read_varint();
    std::string_view data_;
    std::size_t pos_ = 0;
};

}  // namespace faceadapt::onnx::proto
