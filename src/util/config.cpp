#include "halo/util/config.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "halo/util/error.hpp"

namespace halo {

struct Config::Impl {
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  std::string source = "<defaults>";
  mutable std::set<std::string> used;
  std::map<std::string, std::string> overrides;  // key -> the "key=value" that set it, last wins
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(const Config& o) : impl_(std::make_unique<Impl>()) {
  impl_->root = YAML::Clone(o.impl_->root);
  impl_->source = o.impl_->source;
  impl_->used = o.impl_->used;
  impl_->overrides = o.impl_->overrides;
}
Config& Config::operator=(const Config& o) {
  if (this != &o) {
    impl_->root = YAML::Clone(o.impl_->root);
    impl_->source = o.impl_->source;
    impl_->used = o.impl_->used;
    impl_->overrides = o.impl_->overrides;
  }
  return *this;
}

static std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  std::string p;
  while (std::getline(ss, p, '.')) {
    HALO_CHECK_T(ConfigError, !p.empty(), "malformed configuration key '", key, "'");
    parts.push_back(p);
  }
  return parts;
}

// Limits on what a configuration may hold, checked right after parsing: real ones are a few
// levels deep with a few hundred entries. Deeper nesting would only exhaust the stack of the
// recursive walks (here and in yaml-cpp's emitter and copier; yaml-cpp before 0.7 has no
// depth limit of its own), and aliases can make a short text expand into billions of
// nodes ("billion laughs"), which unused_keys() and dump() would then walk.
constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxNodes = 100000;

// Keys must be scalars (unused_keys() and the dotted paths need names), nesting at most
// kMaxDepth deep and the tree, aliases expanded, at most kMaxNodes nodes. Iterative, so
// that it cannot overflow the stack itself.
static void validate(const YAML::Node& root, const std::string& src) {
  std::vector<std::pair<YAML::Node, size_t>> todo{{root, 0}};
  size_t visited = 0;
  while (!todo.empty()) {
    auto [n, depth] = todo.back();
    todo.pop_back();
    HALO_CHECK_T(ConfigError, ++visited <= kMaxNodes, "configuration ", src, ": more than ", kMaxNodes,
                 " entries (aliases expanding without bound?)");
    HALO_CHECK_T(ConfigError, depth <= kMaxDepth, "configuration ", src, ": nested deeper than ", kMaxDepth,
                 " levels");
    if (n.IsMap()) {
      for (const auto& kv : n) {
        HALO_CHECK_T(ConfigError, kv.first.IsScalar(), "configuration ", src,
                     ": keys must be plain names, not lists or mappings (line ", kv.first.Mark().line + 1, ")");
        todo.emplace_back(kv.second, depth + 1);
      }
    } else if (n.IsSequence()) {
      for (const auto& v : n) todo.emplace_back(v, depth + 1);
    }
  }
}

std::string Config::read_file_text(const std::string& path) {
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::is_directory(path, ec)) throw ConfigError("cannot open configuration file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  HALO_CHECK_T(ConfigError, !in.bad(), "cannot read configuration file '", path, "'");
  return text.str();
}

Config Config::parse_file(const std::string& path, const std::string& text) {
  Config c;
  try {
    c.impl_->root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("configuration file '" + path + "': " + e.what());
  }
  if (!c.impl_->root || c.impl_->root.IsNull()) c.impl_->root = YAML::Node(YAML::NodeType::Map);
  HALO_CHECK_T(ConfigError, c.impl_->root.IsMap(), "configuration file '", path, "' must hold a mapping");
  validate(c.impl_->root, "file '" + path + "'");
  c.impl_->source = path;
  return c;
}

Config Config::load_file(const std::string& path) { return parse_file(path, read_file_text(path)); }

Config Config::parse(const std::string& text) {
  Config c;
  try {
    c.impl_->root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("configuration text: ") + e.what());
  }
  if (!c.impl_->root || c.impl_->root.IsNull()) c.impl_->root = YAML::Node(YAML::NodeType::Map);
  HALO_CHECK_T(ConfigError, c.impl_->root.IsMap(), "configuration text must hold a mapping (key: value lines)");
  validate(c.impl_->root, "text");
  c.impl_->source = "<text>";
  return c;
}

void Config::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  HALO_CHECK_T(ConfigError, eq != std::string::npos && eq > 0, "override '", assignment,
               "' must look like key.path=value");
  auto parts = split_key(assignment.substr(0, eq));
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError("override '" + assignment + "': " + e.what());
  }
  validate(value, "override '" + assignment + "'");
  HALO_CHECK_T(ConfigError, parts.size() <= kMaxDepth, "override '", assignment, "': key nested deeper than ",
               kMaxDepth, " levels");
  // Walk with explicit copies: yaml-cpp nodes are handles, assignment rebinds.
  std::vector<YAML::Node> chain{impl_->root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsMap()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
  // A later override of a map replaces what earlier ones set below it.
  const std::string key = assignment.substr(0, eq);
  for (auto it = impl_->overrides.lower_bound(key + "."); it != impl_->overrides.end() &&
                                                          it->first.compare(0, key.size() + 1, key + ".") == 0;)
    it = impl_->overrides.erase(it);
  impl_->overrides[key] = assignment;
}

std::string Config::origin(const std::string& key) const {
  // The key itself or the nearest map above it that an override set.
  for (std::string k = key;;) {
    auto it = impl_->overrides.find(k);
    if (it != impl_->overrides.end()) return "the command line (" + it->second + ")";
    auto dot = k.rfind('.');
    if (dot == std::string::npos) break;
    k.resize(dot);
  }
  if (has(key)) return impl_->source;
  return "the default";
}

// The node at `key`, Undefined when absent. A key given with no value (`key:` in YAML,
// `key=` on the command line) is a Null node: Undefined too, unless `keep_null`.
static YAML::Node find(const YAML::Node& root, const std::string& key, bool keep_null = false) {
  // Const lookups: yaml-cpp's non-const operator[] would insert missing keys.
  std::vector<YAML::Node> chain{root};
  const auto parts = split_key(key);
  for (size_t i = 0; i < parts.size(); ++i) {
    const YAML::Node& cur = chain.back();
    if (!cur.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node next = cur[parts[i]];
    const bool last = i + 1 == parts.size();
    if (!next.IsDefined() || (next.IsNull() && !(keep_null && last))) return YAML::Node(YAML::NodeType::Undefined);
    chain.push_back(next);
  }
  return chain.back();
}

bool Config::has(const std::string& key) const { return find(impl_->root, key).IsDefined(); }

template <class T>
static T as(const YAML::Node& n, const std::string& key, const std::string& src) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    std::ostringstream os;
    os << n;
    throw ConfigError("configuration key '" + key + "' from " + src + " has value '" + os.str() +
                      "' of the wrong type");
  }
}

template <class T>
static T in_range(T v, T lo, T hi, const std::string& key, const std::string& src) {
  // !(v >= lo) also catches NaN.
  if (!(v >= lo) || !(v <= hi)) {
    std::ostringstream os;
    os << "configuration key '" << key << "' from " << src << " is " << v << "; it must be ";
    if (hi == std::numeric_limits<T>::max())
      os << ">= " << lo;
    else if (lo == std::numeric_limits<T>::lowest())
      os << "<= " << hi;
    else
      os << "between " << lo << " and " << hi;
    throw ConfigError(os.str());
  }
  return v;
}


std::string Config::get_string(const std::string& key, const std::string& fallback) const {
  impl_->used.insert(key);
  // An explicitly empty value is the empty string (e.g. data.validation= : no validation).
  YAML::Node n = find(impl_->root, key, /*keep_null=*/true);
  if (n.IsDefined() && n.IsNull()) return std::string();
  return n.IsDefined() ? as<std::string>(n, key, origin(key)) : fallback;
}
double Config::get_double(const std::string& key, double fallback) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  return n.IsDefined() ? as<double>(n, key, origin(key)) : fallback;
}
int64_t Config::get_int(const std::string& key, int64_t fallback) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  return n.IsDefined() ? as<int64_t>(n, key, origin(key)) : fallback;
}
bool Config::get_bool(const std::string& key, bool fallback) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  return n.IsDefined() ? as<bool>(n, key, origin(key)) : fallback;
}
std::vector<double> Config::get_doubles(const std::string& key, const std::vector<double>& fallback) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  return n.IsDefined() ? as<std::vector<double>>(n, key, origin(key)) : fallback;
}
std::vector<int64_t> Config::get_ints(const std::string& key, const std::vector<int64_t>& fallback) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  return n.IsDefined() ? as<std::vector<int64_t>>(n, key, origin(key)) : fallback;
}
int64_t Config::get_int(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const {
  return in_range(get_int(key, fallback), lo, hi, key, origin(key));
}
double Config::get_double(const std::string& key, double fallback, double lo, double hi) const {
  return in_range(get_double(key, fallback), lo, hi, key, origin(key));
}
std::string Config::require_string(const std::string& key) const {
  impl_->used.insert(key);
  YAML::Node n = find(impl_->root, key);
  HALO_CHECK_T(ConfigError, n.IsDefined(), "configuration key '", key, "' is required (", impl_->source, ")");
  return as<std::string>(n, key, origin(key));
}

static void leaves(const YAML::Node& n, const std::string& prefix, std::vector<std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) {
      std::string k = kv.first.as<std::string>();
      leaves(kv.second, prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (!prefix.empty()) {
    out.push_back(prefix);
  }
}

std::vector<std::string> Config::unused_keys() const {
  std::vector<std::string> all, out;
  leaves(impl_->root, "", all);
  for (const auto& k : all) {
    bool used = impl_->used.count(k) > 0;
    // A key is also used when a parent map was read as a whole.
    for (auto pos = k.rfind('.'); !used && pos != std::string::npos; pos = k.rfind('.', pos - 1)) {
      used = impl_->used.count(k.substr(0, pos)) > 0;
      if (pos == 0) break;
    }
    if (!used) out.push_back(k);
  }
  return out;
}

std::string Config::dump() const {
  std::ostringstream os;
  os << impl_->root;
  return os.str();
}

const std::string& Config::source() const { return impl_->source; }

}  // namespace halo
