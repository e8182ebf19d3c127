#include "faceadapt/onnx/proto.hpp"

namespace faceadapt::onnx::proto {

void Writer::put_varint(std::string& out, std::uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7f) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

void Writer::tag(std::uint32_t field, WireType type) { put_varint(buffer_, (std::uint64_t{field} << 3) | type); }

Writer& Writer::varint(std::uint32_t field, std::uint64_t value) {
    tag(field, kVarint);
    put_varint(buffer_, value);
    return *this;
}

Writer& Writer::fixed32(std::uint32_t field, std::uint32_t bits) {
    tag(field, kFixed32);
    for (int i = 0; i < 4; ++i) buffer_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    return *this;
}

Writer& Writer::bytes(std::uint32_t field, std::string_view value) {
    tag(field, kLengthDelimited);
    put_varint(buffer_, value.size());
    buffer_.append(value);
    return *this;
}

std::uint64_t Reader::read_varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (pos_ >= data_.size()) throw ProtoError("protobuf: truncated varint at byte " + std::to_string(pos_));
        const auto byte = static_cast<std::uint8_t>(data_[pos_++]);
        value |= std::uint64_t{byte & 0x7fu} << shift;
        if ((byte & 0x80) == 0) return value;
    }
    throw ProtoError("protobuf: varint longer than 10 bytes at byte " + std::to_string(pos_));
}

bool Reader::next(Field& out) {
    if (pos_ >= data_.size()) return false;
    const std::size_t start = pos_;
    const auto key = read_varint();
    out = Field{};
    out.number = static_cast<std::uint32_t>(key >> 3);
    out.type = static_cast<WireType>(key & 7);
    if (out.number == 0) throw ProtoError("protobuf: field number 0 at byte " + std::to_string(start));
    switch (out.type) {
        case kVarint: out.value = read_varint(); break;
        case kFixed64:
        case kFixed32: {
            const std::size_t n = out.type == kFixed64 ? 8 : 4;
            if (n > data_.size() - pos_) throw ProtoError("protobuf: truncated fixed field at byte " + std::to_string(start));
            for (std::size_t i = 0; i < n; ++i) out.value |= std::uint64_t{static_cast<std::uint8_t>(data_[pos_ + i])} << (8 * i);
            pos_ += n;
            break;
        }
        case kLengthDelimited: {
            const auto len = read_varint();
            if (len > data_.size() - pos_)
                throw ProtoError("protobuf: field " + std::to_string(out.number) + " at byte " + std::to_string(start) +
                                 " claims " + std::to_string(len) + " bytes, " + std::to_string(data_.size() - pos_) + " left");
            out.bytes = data_.substr(pos_, static_cast<std::size_t>(len));
            pos_ += static_cast<std::size_t>(len);
            break;
        }
        default:
            throw ProtoError("protobuf: unsupported wire type " + std::to_string(key & 7) + " at byte " + std::to_string(start));
    }
    out.raw = data_.substr(start, pos_ - start);
    return true;
}

}  // namespace faceadapt::onnx::proto
