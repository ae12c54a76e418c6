//===- Dataset.cpp --------------------------------------------------------===//
#include "mixtape/data/Dataset.h"

#include "AtomicFile.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/data/FlatShard.h"
#include "mixtape/data/IndexedDataset.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <xxhash.h>

using namespace mixtape;
using namespace mixtape::data;
namespace fs = llvm::sys::fs;

static const char *const kSuffixes[] = {".manifest.json", ".meta", ".idx", ".bin"};

uint64_t mixtape::data::documentHash(llvm::ArrayRef<uint32_t> tokens) {
  return XXH3_64bits(tokens.data(), tokens.size() * sizeof(uint32_t));
}

uint64_t mixtape::data::documentHash(const TokenSpan &tokens) {
  if (tokens.dtype() == DType::Int32) // already little-endian uint32 bit patterns
    return XXH3_64bits(tokens.bytes().data(), tokens.bytes().size());
  return documentHash(tokens.toVector());
}

std::string mixtape::data::datasetPrefix(llvm::StringRef path) {
  for (const char *suffix : kSuffixes)
    if (path.endswith(suffix))
      return path.drop_back(llvm::StringRef(suffix).size()).str();
  return path.str();
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

DatasetWriter::DatasetWriter(std::string prefix, Manifest manifest)
    : Prefix(std::move(prefix)), Partial(std::move(manifest)) {}

DatasetWriter::~DatasetWriter() = default;

llvm::Expected<std::unique_ptr<DatasetWriter>>
DatasetWriter::create(llvm::StringRef prefix, ShardFormat format, const Tokenizer &tokenizer) {
  llvm::StringRef parent = llvm::sys::path::parent_path(prefix);
  if (!parent.empty())
    if (std::error_code ec = fs::create_directories(parent))
      return fileError(parent, "cannot create the directory: " + ec.message());
  // The manifest goes first: without it, leftovers are never taken for a dataset.
  for (const char *suffix : kSuffixes)
    if (std::error_code ec = fs::remove(prefix + suffix))
      return fileError(prefix + suffix, "cannot remove the old file: " + ec.message());

  Manifest m;
  m.Format = format;
  m.Tokenizer = tokenizer.id().str();
  m.VocabSize = tokenizer.vocabSize();
  m.Eot = tokenizer.eot();
  m.Dtype = format == ShardFormat::Flat ? DType::UInt16 : smallestTokenDType(m.VocabSize);
  if (format == ShardFormat::Flat && m.VocabSize > dtypeTokenCapacity(DType::UInt16))
    return fileError(prefix + ".bin", "tokenizer " + m.Tokenizer + " has " +
                                          llvm::Twine(m.VocabSize) +
                                          " ids, too many for the uint16 tokens of a flat .bin");
  std::unique_ptr<DatasetWriter> writer(new DatasetWriter(prefix.str(), m));
  if (format == ShardFormat::Megatron) {
    llvm::Expected<std::unique_ptr<IndexedDatasetWriter>> shard =
        IndexedDatasetWriter::create(prefix, m.Dtype);
    if (!shard)
      return shard.takeError();
    writer->Megatron = std::move(*shard);
  } else {
    llvm::Expected<std::unique_ptr<FlatShardWriter>> shard =
        FlatShardWriter::create(prefix.str() + ".bin", m.Eot);
    if (!shard)
      return shard.takeError();
    writer->Flat = std::move(*shard);
  }
  return writer;
}

llvm::Error DatasetWriter::addDocument(llvm::ArrayRef<uint32_t> tokens) {
  if (llvm::Error err = Megatron ? Megatron->addDocument(tokens) : Flat->addDocument(tokens))
    return err;
  Metadata.addRow(documentHash(tokens));
  return llvm::Error::success();
}

llvm::Error DatasetWriter::setNumber(llvm::StringRef column, double value) {
  return Metadata.setNumber(column, value);
}

llvm::Error DatasetWriter::setString(llvm::StringRef column, llvm::StringRef value) {
  return Metadata.setString(column, value);
}

uint64_t DatasetWriter::numDocuments() const { return Metadata.numRows(); }

uint64_t DatasetWriter::numTokens() const {
  return Megatron ? Megatron->numTokens() : Flat->numTokens();
}

llvm::Expected<Manifest> DatasetWriter::finish() {
  Manifest m = Partial;
  m.Tokens = numTokens();
  m.Documents = numDocuments();
  if (Megatron) {
    llvm::Expected<std::vector<FileDigest>> files = Megatron->finish();
    if (!files)
      return files.takeError();
    m.Files = std::move(*files);
  } else {
    llvm::Expected<FileDigest> bin = Flat->finish();
    if (!bin)
      return bin.takeError();
    m.Files.push_back(std::move(*bin));
  }
  return commitManifest(Prefix, std::move(m), Metadata);
}

llvm::Expected<Manifest> mixtape::data::commitManifest(llvm::StringRef prefix, Manifest m, MetadataBuilder &metadata) {
  llvm::Expected<FileDigest> meta = metadata.write((prefix + ".meta").str());
  if (!meta)
    return meta.takeError();
  m.Metadata = meta->Name;
  m.Files.push_back(std::move(*meta));

  llvm::Expected<AtomicFile> manifest = AtomicFile::create((prefix + ".manifest.json").str());
  if (!manifest)
    return manifest.takeError();
  manifest->write(formatManifest(m));
  if (llvm::Expected<FileDigest> done = manifest->commit(); !done)
    return done.takeError();
  return m;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

Dataset::~Dataset() = default;

/// The path of a file the manifest lists: next to the manifest.
static std::string siblingPath(llvm::StringRef prefix, llvm::StringRef name) {
  return joinPath(llvm::sys::path::parent_path(prefix), name);
}

/// Every listed file exists with the recorded size (cheap; checksums are verifyChecksums).
static llvm::Error checkListedFiles(const Manifest &m, llvm::StringRef prefix,
                                    llvm::StringRef manifestPath) {
  for (const FileDigest &file : m.Files) {
    std::string path = siblingPath(prefix, file.Name);
    uint64_t size = 0;
    if (std::error_code ec = fs::file_size(path, size))
      return fileError(path, "cannot open the file that " + manifestPath +
                                 " lists: " + ec.message());
    if (size != file.Bytes)
      return fileError(path, std::min(size, file.Bytes),
                       "file has " + llvm::Twine(size) + " bytes but " + manifestPath +
                           " records " + llvm::Twine(file.Bytes));
  }
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<Dataset>> Dataset::open(llvm::StringRef path,
                                                       const DatasetOpenOptions &options) {
  std::unique_ptr<Dataset> dataset(new Dataset());
  dataset->Prefix = datasetPrefix(path);
  llvm::StringRef prefix = dataset->Prefix;
  std::string manifestPath = prefix.str() + ".manifest.json";
  std::string stem = llvm::sys::path::filename(prefix).str();

  bool own = fs::exists(manifestPath);
  if (own || options.Derived) {
    if (own) {
      llvm::Expected<Manifest> m = readManifest(manifestPath);
      if (!m)
        return m.takeError();
      dataset->Recorded = std::move(*m);
    } else {
      dataset->Recorded = *options.Derived;
      dataset->Derived = true;
      manifestPath = options.DerivedFrom;
    }
    dataset->ManifestPath = manifestPath;
    const Manifest &manifest = *dataset->Recorded;
    dataset->Format = manifest.Format;
    std::vector<std::string> needed = {stem + ".bin"};
    if (manifest.Format == ShardFormat::Megatron)
      needed.push_back(stem + ".idx");
    for (const std::string &name : needed)
      if (!manifest.findFile(name))
        return fileError(manifestPath, "files: does not list " + name);
    if (llvm::Error err = checkListedFiles(manifest, prefix, manifestPath))
      return err;
  } else if (path.endswith(".bin") && !fs::exists(prefix + ".idx")) {
    dataset->Format = ShardFormat::Flat;
    if (!options.FlatEot)
      return fileError(path, "a flat .bin without a manifest needs its end-of-text id (--eot)");
  } else if (!fs::exists(prefix + ".idx")) {
    return fileError(prefix, "no dataset here: neither " + manifestPath + " nor " + prefix +
                                 ".idx exists");
  }

  const Manifest *manifest = dataset->manifest();
  if (dataset->Format == ShardFormat::Megatron) {
    llvm::Expected<std::unique_ptr<IndexedDataset>> shard = IndexedDataset::open(prefix);
    if (!shard)
      return shard.takeError();
    if (manifest && (*shard)->dtype() != manifest->Dtype)
      return fileError((*shard)->indexPath(), 17,
                       "dtype " + dtypeName((*shard)->dtype()) + " but " + manifestPath +
                           " says " + dtypeName(manifest->Dtype));
    dataset->Tokens = std::move(*shard);
  } else {
    uint32_t eot = manifest ? manifest->Eot : *options.FlatEot;
    llvm::Expected<std::unique_ptr<FlatShard>> shard = FlatShard::open(prefix.str() + ".bin", eot);
    if (!shard)
      return shard.takeError();
    dataset->Tokens = std::move(*shard);
  }
  const TokenShard &tokens = *dataset->Tokens;
  if (manifest && tokens.numTokens() != manifest->Tokens)
    return fileError(tokens.path(), "holds " + llvm::Twine(tokens.numTokens()) + " tokens but " +
                                        manifestPath + " records " + llvm::Twine(manifest->Tokens));
  if (manifest && tokens.numDocuments() != manifest->Documents)
    return fileError(tokens.path(), "holds " + llvm::Twine(tokens.numDocuments()) +
                                        " documents but " + manifestPath + " records " +
                                        llvm::Twine(manifest->Documents));
  // Streams read such a document without its last token; an empty one has none to drop. The
  // lengths come from the .idx: no token is read.
  if (manifest && manifest->EodPresent)
    for (uint64_t d = 0, n = tokens.numDocuments(); d < n; ++d)
      if (TokenSpan doc = tokens.document(d); doc.empty())
        return fileError(tokens.path(), doc.byteOffset(),
                         "document " + llvm::Twine(d) + " is empty, but " + manifestPath +
                             " records eod present (every document ends with its end-of-text id)");

  std::string metaPath = dataset->Derived ? options.DerivedHashes
                         : manifest       ? (manifest->Metadata.empty()
                                                 ? std::string()
                                                 : siblingPath(prefix, manifest->Metadata))
                                          : (fs::exists(prefix + ".meta") ? prefix.str() + ".meta"
                                                                          : std::string());
  if (!metaPath.empty()) {
    llvm::Expected<std::unique_ptr<MetadataTable>> table = MetadataTable::open(metaPath);
    if (!table)
      return table.takeError();
    if ((*table)->numRows() != tokens.numDocuments())
      return fileError(metaPath, 16, "row count " + llvm::Twine((*table)->numRows()) +
                                         " but " + tokens.path() + " holds " +
                                         llvm::Twine(tokens.numDocuments()) + " documents");
    dataset->Metadata = std::move(*table);
  }
  return dataset;
}

llvm::Error Dataset::verifyChecksums() const {
  if (!Recorded)
    return fileError(Prefix, "no manifest, so no checksums to verify");
  for (const FileDigest &file : Recorded->Files) {
    llvm::Expected<FileDigest> actual = digestFile(filePath(file));
    if (!actual)
      return actual.takeError();
    if (llvm::Error err = checkDigest(file, *actual))
      return err;
  }
  return llvm::Error::success();
}

std::string Dataset::filePath(const FileDigest &listed) const { return siblingPath(Prefix, listed.Name); }

llvm::Error Dataset::checkDigest(const FileDigest &listed, const FileDigest &actual) const {
  if (actual.Bytes == listed.Bytes && actual.Xxh3 == listed.Xxh3)
    return llvm::Error::success();
  return fileError(filePath(listed), "checksum mismatch: XXH3-64 is " + formatChecksum(actual.Xxh3) + " (" +
                                         llvm::Twine(actual.Bytes) + " bytes) but " + ManifestPath + " records " +
                                         formatChecksum(listed.Xxh3) + " (" + llvm::Twine(listed.Bytes) + " bytes)");
}
