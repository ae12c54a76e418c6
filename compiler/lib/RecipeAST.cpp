//===- RecipeAST.cpp - TOML++ -> located values ---------------------------===//
#include "mixtape/compiler/RecipeAST.h"

#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <toml++/toml.h>

#include <cmath>

using namespace mixtape;

const Value *Value::get(llvm::StringRef key) const {
  const Field *f = field(key);
  return f ? f->Value.get() : nullptr;
}

const Field *Value::field(llvm::StringRef key) const {
  if (Kind != ValueKind::Table)
    return nullptr;
  for (const Field &f : Fields)
    if (f.Key == key)
      return &f;
  return nullptr;
}

llvm::StringRef mixtape::valueKindName(ValueKind kind) {
  switch (kind) {
  case ValueKind::String: return "string";
  case ValueKind::Integer: return "integer";
  case ValueKind::Float: return "float";
  case ValueKind::Bool: return "boolean";
  case ValueKind::Array: return "array";
  case ValueKind::Table: return "table";
  case ValueKind::Other: return "date/time";
  }
  return "value";
}

llvm::StringRef Value::kindName() const { return valueKindName(Kind); }

namespace {

/// Converts TOML++ positions (line, column in code points) into pointers into the buffer.
class Locator {
public:
  Locator(const llvm::SourceMgr &sm, unsigned buffer) : SM(sm), Buffer(buffer) {
    const llvm::MemoryBuffer *mb = sm.getMemoryBuffer(buffer);
    Begin = mb->getBufferStart();
    End = mb->getBufferEnd();
    LineStarts.push_back(Begin);
    for (const char *p = Begin; p < End; ++p)
      if (*p == '\n')
        LineStarts.push_back(p + 1);
  }

  const char *pointer(toml::source_position pos) const {
    if (pos.line == 0 || pos.line > LineStarts.size())
      return End;
    const char *p = LineStarts[pos.line - 1];
    for (unsigned col = 1; col < pos.column && p < End && *p != '\n'; ++col) {
      ++p; // step over one code point: skip UTF-8 continuation bytes
      while (p < End && (static_cast<unsigned char>(*p) & 0xC0) == 0x80)
        ++p;
    }
    return p;
  }

  llvm::SMRange range(const toml::source_region &region) const {
    const char *b = pointer(region.begin);
    const char *e = region.end.line ? pointer(region.end) : b;
    if (e < b)
      e = b;
    return {llvm::SMLoc::getFromPointer(b), llvm::SMLoc::getFromPointer(e)};
  }

  const char *bufferEnd() const { return End; }

private:
  const llvm::SourceMgr &SM;
  unsigned Buffer;
  const char *Begin, *End;
  std::vector<const char *> LineStarts;
};

class Converter {
public:
  Converter(const Locator &loc, DiagnosticEngine &diags) : Loc(loc), Diags(diags) {}

  std::unique_ptr<Value> convert(const toml::node &node) {
    auto v = std::make_unique<Value>();
    v->Range = Loc.range(node.source());
    switch (node.type()) {
    case toml::node_type::string: {
      v->Kind = ValueKind::String;
      v->String = std::string(*node.as_string());
      v->StringLocation = StringLocation(v->Range.Start.getPointer(), Loc.bufferEnd());
      break;
    }
    case toml::node_type::integer:
      v->Kind = ValueKind::Integer;
      v->Integer = node.as_integer()->get();
      v->StringLocation = StringLocation::whole(v->Range);
      break;
    case toml::node_type::floating_point:
      v->Kind = ValueKind::Float;
      v->Real = node.as_floating_point()->get();
      v->StringLocation = StringLocation::whole(v->Range);
      if (!std::isfinite(v->Real))
        Diags.report(DiagCode::BadValue, v->Range, "number is not finite");
      break;
    case toml::node_type::boolean:
      v->Kind = ValueKind::Bool;
      v->Boolean = node.as_boolean()->get();
      v->StringLocation = StringLocation::whole(v->Range);
      break;
    case toml::node_type::array:
      v->Kind = ValueKind::Array;
      v->StringLocation = StringLocation::whole(v->Range);
      for (const toml::node &item : *node.as_array())
        v->Items.push_back(convert(item));
      break;
    case toml::node_type::table: {
      v->Kind = ValueKind::Table;
      v->StringLocation = StringLocation::whole(v->Range);
      const toml::table &table = *node.as_table();
      for (auto &&[key, child] : table) {
        Field f;
        f.Key = std::string(key.str());
        f.KeyRange = Loc.range(key.source());
        f.Value = convert(child);
        v->Fields.push_back(std::move(f));
      }
      // toml::table is ordered by key; users expect source order (zip pairs, messages).
      std::stable_sort(v->Fields.begin(), v->Fields.end(), [](const Field &a, const Field &b) {
        return a.KeyRange.Start.getPointer() < b.KeyRange.Start.getPointer();
      });
      break;
    }
    default:
      v->Kind = ValueKind::Other;
      v->StringLocation = StringLocation::whole(v->Range);
      break;
    }
    return v;
  }

private:
  const Locator &Loc;
  DiagnosticEngine &Diags;
};

} // namespace

static std::unique_ptr<Value> parseBuffer(unsigned bufferId, DiagnosticEngine &diags) {
  llvm::SourceMgr &sm = diags.sources();
  const llvm::MemoryBuffer *mb = sm.getMemoryBuffer(bufferId);
  llvm::StringRef text = mb->getBuffer();
  Locator loc(sm, bufferId);

  // TOML++ rejects these too, but with a message about a code point; say what it is.
  if (text.find('\0') != llvm::StringRef::npos) {
    size_t at = text.find('\0');
    diags.report(DiagCode::TomlSyntax, llvm::SMLoc::getFromPointer(text.data() + at),
                 "file contains a NUL byte: not a text recipe");
    return nullptr;
  }
  const llvm::UTF8 *bad = reinterpret_cast<const llvm::UTF8 *>(text.data());
  if (!llvm::isLegalUTF8String(&bad, reinterpret_cast<const llvm::UTF8 *>(text.end()))) {
    diags.report(DiagCode::TomlSyntax,
                 llvm::SMLoc::getFromPointer(reinterpret_cast<const char *>(bad)),
                 "invalid UTF-8: recipes are UTF-8 text");
    return nullptr;
  }

  toml::table table;
  try {
    table = toml::parse(std::string_view(text.data(), text.size()),
                        std::string_view(mb->getBufferIdentifier()));
  } catch (const toml::parse_error &err) {
    diags.report(DiagCode::TomlSyntax, loc.range(err.source()), std::string(err.description()));
    return nullptr;
  }
  Converter converter(loc, diags);
  auto root = converter.convert(table);
  root->Range = llvm::SMRange(llvm::SMLoc::getFromPointer(text.begin()),
                              llvm::SMLoc::getFromPointer(text.begin()));
  return root;
}

std::unique_ptr<Value> mixtape::parseRecipeFile(llvm::StringRef path, DiagnosticEngine &diags) {
  // A device or a pipe could be read forever: only regular files, and only so much of one.
  llvm::sys::fs::file_status status;
  if (std::error_code ec = llvm::sys::fs::status(path, status)) {
    diags.reportFile(DiagCode::Io, path, "cannot read: " + ec.message());
    return nullptr;
  }
  if (status.type() != llvm::sys::fs::file_type::regular_file) {
    diags.reportFile(DiagCode::Io, path,
                     status.type() == llvm::sys::fs::file_type::directory_file ? "is a directory, not a recipe file"
                                                                               : "not a regular file");
    return nullptr;
  }
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer) {
    diags.reportFile(DiagCode::Io, path, "cannot read: " + buffer.getError().message());
    return nullptr;
  }
  // Checked on what was read (mapped, for a large file), which cannot change after the check.
  if (uint64_t size = (*buffer)->getBufferSize(); size > kMaxRecipeBytes) {
    diags.reportFile(DiagCode::Io, path,
                     "recipe of " + std::to_string(size) + " bytes exceeds the limit of " +
                         std::to_string(kMaxRecipeBytes >> 20) + " MiB");
    return nullptr;
  }
  unsigned id = diags.sources().AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
  return parseBuffer(id, diags);
}

std::unique_ptr<Value> mixtape::parseRecipeText(llvm::StringRef text, llvm::StringRef name,
                                                DiagnosticEngine &diags) {
  unsigned id = diags.sources().AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, name),
                                                   llvm::SMLoc());
  return parseBuffer(id, diags);
}
