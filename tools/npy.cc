#include "tools/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string_view>

namespace kiln::tools {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
// Header blocks are padded so the data starts on this boundary (numpy >= 1.14
// writes 64; older files use 16, and readers must not insist on either).
constexpr size_t kHeaderAlignment = 64;

struct DTypeCode {
  DType dtype;
  char kind;  // numpy's kind letter: 'f', 'i', 'u', 'b'
  int size;
};
constexpr DTypeCode kDTypeCodes[] = {
    {DType::kFloat32, 'f', 4}, {DType::kFloat64, 'f', 8}, {DType::kInt64, 'i', 8}, {DType::kInt32, 'i', 4},
    {DType::kInt16, 'i', 2},   {DType::kInt8, 'i', 1},    {DType::kUint8, 'u', 1}, {DType::kBool, 'b', 1},
};

// Maps a descr such as "<f4" or "|b1" to a DType. The byte order must be
// little-endian ('<'), native ('=', little-endian on every host kiln runs on)
// or not applicable ('|', single-byte types).
StatusOr<DType> ParseDescr(const std::string& descr) {
  if (descr.size() < 3) return InvalidArgument("bad dtype descr '", descr, "'");
  char order = descr[0];
  char kind = descr[1];
  int size = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    if (descr[i] < '0' || descr[i] > '9' || size > 1000) {
      return InvalidArgument("bad dtype descr '", descr, "'");
    }
    size = size * 10 + (descr[i] - '0');
  }
  if (order == '>' && size > 1) {
    return Unsupported("big-endian dtype '", descr, "' is not supported");
  }
  if (order != '<' && order != '=' && order != '|' && order != '>') {
    return InvalidArgument("bad byte order in dtype descr '", descr, "'");
  }
  if (order == '|' && size > 1) return InvalidArgument("bad dtype descr '", descr, "'");
  for (const DTypeCode& code : kDTypeCodes) {
    if (code.kind == kind && code.size == size) return code.dtype;
  }
  return Unsupported("dtype '", descr, "' is not supported (supported: <f4 <f8 <i8 <i4 <i2 |i1 |u1 |b1)");
}

// The descr numpy writes for `dtype`.
StatusOr<std::string> DescrOf(DType dtype) {
  for (const DTypeCode& code : kDTypeCodes) {
    if (code.dtype == dtype) {
      std::string descr(1, code.size == 1 ? '|' : '<');
      descr += code.kind;
      descr += std::to_string(code.size);
      return descr;
    }
  }
  return InvalidArgument("cannot write a tensor of dtype ", DTypeName(dtype), " to .npy");
}

// The parsed header dictionary.
struct Header {
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<Dims> shape;
};

// A parser for the one Python literal a .npy header holds: a dict of
// 'descr' (str), 'fortran_order' (bool) and 'shape' (tuple of ints).
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  StatusOr<Header> Parse() {
    Header header;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    while (!Consume('}')) {
      KILN_ASSIGN_OR_RETURN(std::string key, ParseString());
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after key '" + key + "'");
      SkipSpace();
      if (key == "descr") {
        if (header.descr) return Error("duplicate key 'descr'");
        KILN_ASSIGN_OR_RETURN(header.descr, ParseString());
      } else if (key == "fortran_order") {
        if (header.fortran_order) return Error("duplicate key 'fortran_order'");
        KILN_ASSIGN_OR_RETURN(header.fortran_order, ParseBool());
      } else if (key == "shape") {
        if (header.shape) return Error("duplicate key 'shape'");
        KILN_ASSIGN_OR_RETURN(header.shape, ParseShape());
      } else {
        return Error("unexpected key '" + key + "'");
      }
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != '}') {
        return Error("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the dict");
    if (!header.descr || !header.fortran_order || !header.shape) {
      return InvalidArgument("bad .npy header: it must have 'descr', 'fortran_order' and 'shape'");
    }
    return header;
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  Status Error(const std::string& what) const {
    return InvalidArgument("bad .npy header at offset ", pos_, ": ", what);
  }

  StatusOr<std::string> ParseString() {
    char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a quoted string");
    ++pos_;
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      // Header strings are short identifiers; escapes never occur in them.
      if (text_[pos_] == '\\') return Error("escape sequences are not supported");
      out += text_[pos_++];
    }
    if (!Consume(quote)) return Error("unterminated string");
    return out;
  }

  StatusOr<bool> ParseBool() {
    if (ConsumeWord("True")) return true;
    if (ConsumeWord("False")) return false;
    return Error("expected True or False");
  }

  StatusOr<Dims> ParseShape() {
    if (!Consume('(')) return Error("expected '(' to start the shape");
    Dims dims;
    SkipSpace();
    while (!Consume(')')) {
      if (Peek() < '0' || Peek() > '9') return Error("expected a non-negative integer dim");
      int64_t dim = 0;
      while (Peek() >= '0' && Peek() <= '9') {
        dim = dim * 10 + (text_[pos_++] - '0');
        if (dim > kMaxNpyDim) return Error("dim is too large");
      }
      Consume('L');  // Python 2 longs
      dims.push_back(dim);
      if (dims.size() > kMaxNpyRank) return Error("rank is too large");
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != ')') {
        return Error("expected ',' or ')' in the shape");
      }
    }
    return dims;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t ReadLittleEndian(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

StatusOr<Tensor> ParseNpy(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (size < kMagicSize + 2 || std::memcmp(bytes, kMagic, kMagicSize) != 0) {
    return InvalidArgument("not a .npy file (bad magic)");
  }
  int major = bytes[6];
  int minor = bytes[7];
  size_t length_bytes = 0;
  if (major == 1) {
    length_bytes = 2;
  } else if (major == 2 || major == 3) {
    length_bytes = 4;
  } else {
    return Unsupported(".npy format version ", major, ".", minor, " is not supported");
  }
  size_t prefix = kMagicSize + 2 + length_bytes;
  if (size < prefix) return InvalidArgument("truncated .npy file (no header length)");
  size_t header_len = ReadLittleEndian(bytes + kMagicSize + 2, static_cast<int>(length_bytes));
  if (header_len > size - prefix) {
    return InvalidArgument("truncated .npy file: header of ", header_len, " bytes but only ", size - prefix, " left");
  }
  std::string_view header_text(reinterpret_cast<const char*>(bytes + prefix), header_len);
  KILN_ASSIGN_OR_RETURN(Header header, HeaderParser(header_text).Parse());
  if (*header.fortran_order) {
    return Unsupported(
        ".npy files in Fortran order are not supported; save a C-contiguous array "
        "(numpy.ascontiguousarray)");
  }
  KILN_ASSIGN_OR_RETURN(DType dtype, ParseDescr(*header.descr));
  StatusOr<int64_t> count = CheckedNumElements(*header.shape, dtype);
  if (!count.ok()) return count.status().WithContext("bad .npy shape " + DimsToString(*header.shape));

  size_t data_offset = prefix + header_len;
  size_t available = size - data_offset;
  size_t needed = static_cast<size_t>(*count) * DTypeSize(dtype);
  if (available != needed) {
    return InvalidArgument(available < needed ? "truncated .npy file" : "trailing bytes in .npy file", ": shape ",
                           DimsToString(*header.shape), " of ", DTypeName(dtype), " needs ", needed,
                           " data bytes, the file has ", available);
  }
  KILN_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(dtype, *header.shape));
  if (needed > 0) std::memcpy(tensor.raw_data(), bytes + data_offset, needed);
  if (dtype == DType::kBool) {
    // A bool holding anything but 0 or 1 is undefined behaviour to read.
    auto* b = static_cast<unsigned char*>(tensor.raw_data());
    for (size_t i = 0; i < needed; ++i) b[i] = b[i] != 0;
  }
  return tensor;
}

StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return IoError("cannot read '", path, "'");
  return ParseNpy(bytes.data(), bytes.size());
}

StatusOr<std::string> SerializeNpy(const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(std::string descr, DescrOf(tensor.dtype()));
  std::ostringstream dict;
  dict << "{'descr': '" << descr << "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < tensor.dims().size(); ++i) {
    dict << tensor.dims()[i] << (tensor.dims().size() == 1 ? "," : (i + 1 < tensor.dims().size() ? ", " : ""));
  }
  dict << "), }";
  std::string header = dict.str();

  // Pad with spaces and end with '\n' so the data starts aligned.
  int major = 1;
  size_t prefix = kMagicSize + 2 + 2;
  size_t total = prefix + header.size() + 1;
  if (total + kHeaderAlignment > 65535 + prefix) {
    major = 2;
    prefix = kMagicSize + 2 + 4;
    total = prefix + header.size() + 1;
  }
  size_t padded = (total + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  header.append(padded - total, ' ');
  header += '\n';
  size_t header_len = header.size();

  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(major);
  out += static_cast<char>(0);
  for (size_t i = 0; i < prefix - kMagicSize - 2; ++i) {
    out += static_cast<char>((header_len >> (8 * i)) & 0xff);
  }
  out += header;
  size_t data_offset = out.size();
  out.resize(data_offset + tensor.byte_size());
  if (tensor.byte_size() > 0) std::memcpy(out.data() + data_offset, tensor.raw_data(), tensor.byte_size());
  if (tensor.dtype() == DType::kBool) {
    for (size_t i = data_offset; i < out.size(); ++i) out[i] = out[i] != 0;
  }
  return out;
}

Status WriteNpy(const std::string& path, const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, SerializeNpy(tensor));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return IoError("cannot open '", path, "' for writing");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return IoError("failed writing '", path, "'");
  return Status::Ok();
}

}  // namespace kiln::tools
