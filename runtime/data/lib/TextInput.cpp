//===- TextInput.cpp ------------------------------------------------------===//
#include "mixtape/data/TextInput.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"

#if MIXTAPE_HAVE_ZLIB
#include <zlib.h>
#endif
#if MIXTAPE_HAVE_ZSTD
#include <zstd.h>
#endif

#include <cstring>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;

constexpr size_t kReadBytes = 256 << 10;
constexpr size_t kSniffBytes = 64 << 10;

/// Turns compressed bytes into text. `in` is advanced past what was used, also on an
/// error (which is then at that byte); `ended` tells whether the input so far ends a whole
/// stream (between gzip members or zstd frames).
struct TextInput::Decoder {
  virtual ~Decoder() = default;
  /// Text bytes written to `out`, or a message about the data.
  virtual llvm::Expected<size_t> decode(const char *&in, size_t &inSize, char *out, size_t max) = 0;
  virtual bool ended() const = 0;
  virtual llvm::StringRef format() const = 0;
};

namespace {

#if MIXTAPE_HAVE_ZLIB
class GzipDecoder final : public TextInput::Decoder {
public:
  GzipDecoder() {
    // 15 window bits + 16: gzip framing only.
    Ok = inflateInit2(&Z, 15 + 16) == Z_OK;
  }
  ~GzipDecoder() override { inflateEnd(&Z); }

  llvm::Expected<size_t> decode(const char *&in, size_t &inSize, char *out, size_t max) override {
    if (!Ok)
      return makeError("zlib could not start");
    Z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in));
    Z.avail_in = static_cast<uInt>(inSize);
    Z.next_out = reinterpret_cast<Bytef *>(out);
    Z.avail_out = static_cast<uInt>(max);
    if (inSize)
      InMember = true;
    int ret = inflate(&Z, Z_NO_FLUSH);
    size_t used = inSize - Z.avail_in, made = max - Z.avail_out;
    in += used;
    inSize -= used;
    if (ret == Z_STREAM_END) {
      InMember = false; // another member may follow
      inflateReset(&Z);
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return makeError(llvm::Twine("corrupt gzip data: ") + (Z.msg ? Z.msg : "inflate failed"));
    }
    return made;
  }
  bool ended() const override { return !InMember; }
  llvm::StringRef format() const override { return "gzip"; }

private:
  z_stream Z{};
  bool Ok = false, InMember = false;
};
#endif

#if MIXTAPE_HAVE_ZSTD
class ZstdDecoder final : public TextInput::Decoder {
public:
  ZstdDecoder() : Stream(ZSTD_createDStream()) {}
  ~ZstdDecoder() override { ZSTD_freeDStream(Stream); }

  llvm::Expected<size_t> decode(const char *&in, size_t &inSize, char *out, size_t max) override {
    if (!Stream)
      return makeError("zstd could not start");
    ZSTD_inBuffer input{in, inSize, 0};
    ZSTD_outBuffer output{out, max, 0};
    size_t ret = ZSTD_decompressStream(Stream, &output, &input);
    in += input.pos;
    inSize -= input.pos;
    if (ZSTD_isError(ret))
      return makeError(llvm::Twine("corrupt zstd data: ") + ZSTD_getErrorName(ret));
    // 0: a frame is complete and flushed; otherwise more of it is to come.
    InFrame = ret != 0;
    return output.pos;
  }
  bool ended() const override { return !InFrame; }
  llvm::StringRef format() const override { return "zstd"; }

private:
  ZSTD_DStream *Stream;
  bool InFrame = false;
};
#endif

/// What the first bytes of a file say it is, when it is a format prepare must not read as
/// text; "" otherwise.
llvm::StringRef refusedFormat(llvm::StringRef head) {
  if (head.startswith("PAR1"))
    return "a Parquet file (magic PAR1), which prepare does not read (Debian packages no Arrow "
           "or Parquet reader): convert it to JSONL first, e.g. with pandas: "
           "pd.read_parquet(IN).to_json(OUT, orient='records', lines=True, force_ascii=False)";
  if (head.startswith("PK\x03\x04"))
    return "a zip archive, which prepare does not read: extract it first";
  if (head.startswith(llvm::StringRef("\xfd" "7zXZ\0", 6)))
    return "xz-compressed, which prepare does not read: decompress it first, or recompress it "
           "with gzip or zstd";
  if (head.startswith("BZh") && head.size() >= 10 && head.substr(4, 6) == "1AY&SY")
    return "bzip2-compressed, which prepare does not read: decompress it first, or recompress it "
           "with gzip or zstd";
  return "";
}

/// The first byte of `text` that makes it binary: a NUL or a byte that is not UTF-8. A
/// sequence cut off at the end counts as text unless `whole`. npos when it is text.
size_t firstBinaryByte(llvm::StringRef text, bool whole, std::string &why) {
  const auto *s = reinterpret_cast<const llvm::UTF8 *>(text.data());
  for (size_t i = 0; i < text.size();) {
    if (s[i] == 0) {
      why = "a NUL byte";
      return i;
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t length = llvm::getNumBytesForUTF8(s[i]);
    if (i + length > text.size() && !whole)
      return llvm::StringRef::npos;
    if (i + length > text.size() || !llvm::isLegalUTF8Sequence(s + i, s + i + length)) {
      why = "not UTF-8";
      return i;
    }
    i += length;
  }
  return llvm::StringRef::npos;
}

} // namespace

TextInput::~TextInput() {
  if (FD >= 0)
    fs::closeFile(FD);
}

llvm::Error TextInput::refill() {
  if (InPos < InEnd || FileEnded)
    return llvm::Error::success();
  In.resize(kReadBytes);
  llvm::Expected<size_t> got = fs::readNativeFile(FD, llvm::MutableArrayRef<char>(In.data(), In.size()));
  if (!got)
    return fileError(Path, Consumed, "cannot read: " + llvm::toString(got.takeError()));
  InPos = 0;
  InEnd = *got;
  FileEnded = *got == 0;
  return llvm::Error::success();
}

llvm::Expected<size_t> TextInput::readText(char *out, size_t max) {
  for (;;) {
    if (llvm::Error e = refill())
      return std::move(e);
    if (!Decode) {
      size_t n = std::min(max, InEnd - InPos);
      std::memcpy(out, In.data() + InPos, n);
      InPos += n;
      Consumed += n;
      return n;
    }
    if (InPos == InEnd) {
      if (Decode->ended())
        return 0;
      return fileError(Path, Consumed, "truncated " + Decode->format() + " data: the file ends inside a " +
                                           (Kind == Compression::Gzip ? "member" : "frame"));
    }
    const char *in = In.data() + InPos;
    size_t inSize = InEnd - InPos;
    llvm::Expected<size_t> made = Decode->decode(in, inSize, out, max);
    Consumed += (InEnd - InPos) - inSize;
    InPos = InEnd - inSize;
    if (!made)
      return fileError(Path, Consumed, llvm::toString(made.takeError()));
    if (*made)
      return *made;
  }
}

llvm::Expected<size_t> TextInput::read(std::string &out, size_t max) {
  if (SniffedPos < Sniffed.size()) {
    size_t n = std::min(max, Sniffed.size() - SniffedPos);
    out.append(Sniffed, SniffedPos, n);
    SniffedPos += n;
    if (SniffedPos == Sniffed.size())
      std::string().swap(Sniffed);
    return n;
  }
  size_t old = out.size();
  out.resize(old + max);
  llvm::Expected<size_t> n = readText(out.data() + old, max);
  out.resize(old + (n ? *n : 0));
  return n;
}

llvm::Expected<std::unique_ptr<TextInput>> TextInput::open(llvm::StringRef path) {
  std::unique_ptr<TextInput> input(new TextInput());
  input->Path = input->TextName = path.str();
  llvm::Expected<fs::file_t> fd = fs::openNativeFileForRead(path);
  if (!fd)
    return fileError(path, "cannot read: " + llvm::toString(fd.takeError()));
  input->FD = *fd;
  if (llvm::Error e = input->refill())
    return std::move(e);
  llvm::StringRef head(input->In.data(), input->InEnd);
  if (head.startswith("\x1f\x8b"))
    input->Kind = Compression::Gzip;
  else if (head.startswith("\x28\xb5\x2f\xfd"))
    input->Kind = Compression::Zstd;
  if (input->Kind != Compression::None) {
    const char *library = input->Kind == Compression::Gzip ? "zlib" : "libzstd";
#if MIXTAPE_HAVE_ZLIB
    if (input->Kind == Compression::Gzip)
      input->Decode = std::make_unique<GzipDecoder>();
#endif
#if MIXTAPE_HAVE_ZSTD
    if (input->Kind == Compression::Zstd)
      input->Decode = std::make_unique<ZstdDecoder>();
#endif
    if (!input->Decode)
      return fileError(path, llvm::Twine(input->Kind == Compression::Gzip ? "gzip" : "zstd") +
                                 "-compressed, and this build has no " + library +
                                 " (scripts/setup installs it; rebuild)");
    input->TextName += " (decompressed)";
  }

  // The first 64 KiB of text, checked, then handed out first by read().
  input->Sniffed.resize(kSniffBytes);
  size_t have = 0;
  while (have < kSniffBytes) {
    llvm::Expected<size_t> n = input->readText(input->Sniffed.data() + have, kSniffBytes - have);
    if (!n)
      return n.takeError();
    if (*n == 0)
      break;
    have += *n;
  }
  input->Sniffed.resize(have);
  if (llvm::StringRef refused = refusedFormat(input->Sniffed); !refused.empty())
    return fileError(input->TextName, refused);
  std::string why;
  size_t binary = firstBinaryByte(input->Sniffed, /*whole=*/have < kSniffBytes, why);
  if (binary != llvm::StringRef::npos)
    return fileError(input->TextName, binary,
                     "a binary file (" + why + "), not text or JSONL; prepare reads UTF-8 text, "
                     "plain or gzip- or zstd-compressed");
  return std::move(input);
}
