//===- Options.h - the option parser of every subcommand ---------*- C++ -*-===//
//
// Every `mixtape` subcommand declares its options to an OptionParser, and every group of
// subcommands (`mixtape`, `mixtape data`) dispatches through a CommandTable, so that all of
// them follow the same conventions:
//  - `--name V` and `--name=V` for every value option; names may have one dash (-Werror);
//  - -h and --help everywhere, and --help anywhere wins over any usage error;
//  - `--` ends the options; `-` alone is a positional argument (standard input or output);
//  - a repeated option: the last one wins, except list options, which collect every value;
//  - a usage error prints "<command>: <message>" and "run '<command> --help' for usage" on
//    stderr and exits 2; a mistyped name gets "did you mean" when a declared one is close;
//  - help is generated in declaration order and wrapped at 100 columns, whatever the
//    terminal, so that it reads the same everywhere (and in tests);
//  - `--list-options` as the only argument lists the command's options and operands (or a
//    group's subcommands) one per line, tab-separated, for the generated shell completion
//    (`mixtape completion`): "flag NAMES", "value NAMES META", "prefix PREFIX META",
//    "operand META", "command NAME", NAMES being every spelling, separated by spaces.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

#include <cassert>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace mixtape {

/// Declares a command's options, parses its arguments into the caller's variables and
/// writes its help. A variable keeps its value when its option is absent, so its initial
/// value is the default. The parser refers to the variables (and to itself, for -h), so it
/// is neither copied nor moved. Names are given with their dashes: "--out", "-Werror".
class OptionParser {
public:
  /// Checks and stores a value: returns the whole error message, or "" when it is good.
  using Handler = std::function<std::string(llvm::StringRef value)>;
  /// positional()'s `max` when any number of arguments may follow.
  static constexpr size_t Unlimited = std::numeric_limits<size_t>::max();
  enum NumberCheck { Finite, Positive };

  /// `command` as users type it ("mixtape plan"), `usage` what follows "[options]" on the
  /// usage line ("RECIPE"), `summary` the lines printed under the usage line.
  OptionParser(llvm::StringRef command, llvm::StringRef usage, llvm::StringRef summary);
  OptionParser(const OptionParser &) = delete;
  OptionParser &operator=(const OptionParser &) = delete;

  /// `name` sets `into` to true.
  OptionParser &flag(llvm::StringRef name, bool &into, llvm::StringRef help);
  /// `--name` sets `into` to true and `--no-name` to false; left unset, the command decides
  /// (useColor takes --color / --no-color this way).
  OptionParser &toggle(llvm::StringRef name, std::optional<bool> &into, llvm::StringRef help);
  /// `name V` or `name=V`; `meta` is V in the help ("FILE").
  OptionParser &value(llvm::StringRef name, llvm::StringRef meta, std::string &into, llvm::StringRef help);
  /// A value that `handle` checks and stores itself, e.g. comma-separated weights.
  OptionParser &value(llvm::StringRef name, llvm::StringRef meta, Handler handle, llvm::StringRef help);
  /// A value per occurrence, appended to `into` in order (--node A --node B).
  OptionParser &list(llvm::StringRef name, llvm::StringRef meta, std::vector<std::string> &into, llvm::StringRef help);
  /// A decimal integer from `min` to `max`, stored in any integer type it fits.
  template <typename Int>
  OptionParser &integer(llvm::StringRef name, llvm::StringRef meta, Int &into, uint64_t min, uint64_t max,
                        llvm::StringRef help) {
    static_assert(std::is_integral_v<Int>);
    assert(min <= max && max <= uint64_t(std::numeric_limits<Int>::max()) && "the range must fit `into`");
    auto store = [&into](uint64_t n) { into = static_cast<Int>(n); };
    return addInteger(name, meta, store, min, max, help);
  }
  /// A finite number; with Positive, greater than zero too.
  OptionParser &number(llvm::StringRef name, llvm::StringRef meta, double &into, llvm::StringRef help,
                       NumberCheck check = Finite);
  /// One of `choices`, which the help lists as the meta ("text|json").
  OptionParser &choice(llvm::StringRef name, llvm::ArrayRef<llvm::StringRef> choices, std::string &into,
                       llvm::StringRef help);
  /// Every argument that starts with `prefix` (-Wno-<code>): `handle` gets the rest.
  OptionParser &prefixed(llvm::StringRef prefix, llvm::StringRef meta, Handler handle, llvm::StringRef help);
  /// Another spelling of the option declared last (-o for --out).
  OptionParser &alias(llvm::StringRef name);
  /// The option declared last must be given.
  OptionParser &required();
  /// The arguments that are not options, `meta` naming them in errors ("RECIPE...").
  OptionParser &positional(llvm::StringRef meta, std::vector<std::string> &into, size_t min, size_t max);
  /// Lines printed after the options, e.g. "exit status: 0 clean, 1 errors, 2 usage".
  OptionParser &epilog(llvm::StringRef text);

  /// std::nullopt: every argument is stored, go on. Otherwise the command returns this exit
  /// code at once: 0 after -h or --help printed the help to `out`, 2 after a usage error
  /// was printed to `err`.
  std::optional<int> parse(llvm::ArrayRef<llvm::StringRef> args, llvm::raw_ostream &out = llvm::outs(),
                           llvm::raw_ostream &err = llvm::errs());
  /// Reports a usage error the way parse() does, for the checks a command makes after it
  /// ("--out only goes with --dry-run"); returns 2.
  int usageError(const llvm::Twine &message, llvm::raw_ostream &err = llvm::errs()) const;
  void printHelp(llvm::raw_ostream &os) const;
  /// What `--list-options` prints (see the top of this file).
  void listOptions(llvm::raw_ostream &os) const;

private:
  /// Stores an option's value: gets the spelling typed (errors name it) and the value;
  /// returns an error message or "".
  using StoreFn = std::function<std::string(llvm::StringRef name, llvm::StringRef value)>;
  struct Option {
    std::vector<std::string> Names; ///< for a prefixed option, the prefix
    std::string Meta;
    std::string Help;
    StoreFn Store;
    bool TakesValue = false, Prefixed = false, Required = false, Seen = false;
  };

  OptionParser &add(llvm::StringRef name, llvm::StringRef meta, bool takesValue, llvm::StringRef help, StoreFn store);
  OptionParser &addInteger(llvm::StringRef name, llvm::StringRef meta, std::function<void(uint64_t)> store,
                           uint64_t min, uint64_t max, llvm::StringRef help);
  Option *find(llvm::StringRef name);
  std::string expectedPositionals() const;

  std::string Command, Usage, Summary, Epilog, PositionalMeta;
  std::vector<Option> Options;
  std::vector<std::string> *Positional = nullptr;
  size_t MinPositional = 0, MaxPositional = 0;
  bool HelpRequested = false;
};

/// A row of a CommandTable: `<group> <Name> ARGS...` runs `Run(ARGS)`.
struct Subcommand {
  llvm::StringRef Name;
  llvm::StringRef Summary;
  int (*Run)(llvm::ArrayRef<llvm::StringRef> args);
};

/// The subcommands of a group (`mixtape`, `mixtape data`): runs the one named first, lists
/// them for --help, -h and help, and answers a mistyped name with the closest one. The
/// rows' strings are not copied: a static table of literals.
class CommandTable {
public:
  CommandTable(llvm::StringRef command, llvm::StringRef summary, llvm::ArrayRef<Subcommand> commands);
  /// --version prints `text` (the top-level driver's).
  CommandTable &version(llvm::StringRef text);
  /// The subcommand's exit code; 0 after the help or the version was printed to `out`; 2
  /// after a usage error (or the help, when no command is named) was printed to `err`.
  int dispatch(llvm::ArrayRef<llvm::StringRef> args, llvm::raw_ostream &out = llvm::outs(),
               llvm::raw_ostream &err = llvm::errs()) const;
  void printHelp(llvm::raw_ostream &os) const;
  /// What `--list-options` prints: the subcommands and the group's own options.
  void listOptions(llvm::raw_ostream &os) const;

private:
  std::string Command, Summary, Version;
  std::vector<Subcommand> Commands;
};

/// Whether to color what goes to `os`: as forced (--color / --no-color); else not when the
/// NO_COLOR environment variable is set and not empty (https://no-color.org); else when `os`
/// is a terminal. Pass llvm::errs() for diagnostics.
bool useColor(const llvm::raw_ostream &os, std::optional<bool> forced);

} // namespace mixtape
