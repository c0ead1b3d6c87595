// halo-data: generate synthetic data sets, inspect and verify HDF5 sample files, and pack
// per-sample files into shards. `halo-data --help` lists the commands; docs/data-formats.md
// describes every layout.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "halo/data/format.hpp"
#include "halo/data/inspect.hpp"
#include "halo/data/packed.hpp"
#include "halo/data/synthetic.hpp"

using namespace halo;
using namespace halo::data;

namespace {

const char* kUsage =
    "usage: halo-data COMMAND [options]\n"
    "  generate --format F --out DIR [--samples N] [--size EDGE] [--height H --width W]\n"
    "           [--per-shard K] [--seed S]     (defaults: 8 samples, edge 128, 768x1152)\n"
    "      F: cosmoflow-mlperf, cosmoflow-lbann, cosmoflow-raw, deepcam, packed-cosmoflow, packed-deepcam\n"
    "  inspect FILE... [--json] [--format F] [--subvolume EDGE] [--stats STATS.h5]\n"
    "      format, sample count, shapes, dtypes, per-channel min/max/mean/std after the format's\n"
    "      transform, label class fractions (DeepCAM stats.h5: by default beside the files)\n"
    "  pack FILE_OR_DIR... --out DIR [--per-shard K] [--format F] [--subvolume EDGE] [--stats STATS.h5]\n"
    "  verify FILE... [--format F] [--subvolume EDGE] [--stats STATS.h5]\n"
    "      checks every file's shapes and dtypes against the format and the first file, reads\n"
    "      every sample; lists bad ones with the reason; exit status 1 if any is bad\n";

struct Args {
  std::vector<std::string> files;
  std::map<std::string, std::string> opt;
  bool has(const std::string& k) const { return opt.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? d : it->second;
  }
  int64_t num(const std::string& k, int64_t d) const {
    if (!has(k)) return d;
    const std::string v = get(k);
    size_t used = 0;
    int64_t n = 0;
    try {
      n = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HALO_CHECK_T(ConfigError, used == v.size() && !v.empty(), "option --", k, " needs an integer (got '", v, "')");
    return n;
  }
};

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (s == "--json") {
      a.opt["json"] = "1";
    } else if (s.rfind("--", 0) == 0) {
      HALO_CHECK_T(ConfigError, i + 1 < argc, "option ", s, " needs a value");
      a.opt[s.substr(2)] = argv[++i];
    } else {
      a.files.push_back(s);
    }
  }
  return a;
}

Layout layout_for(const Args& a, const std::string& file) {
  return layout_by_name(a.get("format", "auto"), file, a.num("subvolume", 0), a.get("stats"));
}

nlohmann::json stats_json(const ChannelStats& c) {
  return {{"min", c.min}, {"max", c.max}, {"mean", c.mean}, {"std", c.std}};
}

int cmd_generate(const Args& a) {
  GenerateOptions o;
  o.format = a.get("format", o.format);
  o.out_dir = a.get("out", o.out_dir);
  o.samples = a.num("samples", o.samples);
  o.size = a.num("size", o.size);
  o.height = a.num("height", o.height);
  o.width = a.num("width", o.width);
  o.per_shard = a.num("per-shard", o.per_shard);
  o.seed = uint64_t(a.num("seed", 0));
  auto files = generate(o);
  std::printf("wrote %zu %s file(s) to %s\n", files.size(), o.format.c_str(), o.out_dir.c_str());
  return 0;
}

int cmd_inspect(const Args& a) {
  HALO_CHECK_T(ConfigError, !a.files.empty(), "no files given");
  nlohmann::json all = nlohmann::json::array();
  for (const auto& f : a.files) {
    FileReport r = inspect_file(f, layout_for(a, f));
    nlohmann::json j;
    j["file"] = r.file;
    j["format"] = r.layout.format;
    j["samples"] = r.samples;
    j["data"] = {{"dataset", r.layout.data}, {"shape", r.data_dims}, {"dtype", r.data_dtype}, {"axes", r.layout.axes}};
    j["label"] = {{"dataset", r.layout.label}, {"shape", r.label_dims}, {"dtype", r.label_dtype}};
    j["transform"] = name(r.layout.transform);
    j["sample_shape"] = r.sample_shape;
    j["label_shape"] = r.label_shape;
    j["channels"] = nlohmann::json::array();
    for (auto& c : r.channels) j["channels"].push_back(stats_json(c));
    if (r.layout.label_kind == LabelKind::mask) {
      j["class_fractions"] = r.class_fractions;
    } else {
      j["label_components"] = nlohmann::json::array();
      for (auto& c : r.label_components) j["label_components"].push_back(stats_json(c));
    }
    all.push_back(j);
    if (!a.has("json")) {
      std::printf("%s\n  format %s, %lld sample(s), transform %s\n", f.c_str(), r.layout.format.c_str(),
                  (long long)r.samples, name(r.layout.transform));
      std::printf("  data  '%s' %s %s axes %s -> sample (C,...) %s float32\n", r.layout.data.c_str(),
                  to_string(r.data_dims).c_str(), r.data_dtype.c_str(), r.layout.axes.c_str(),
                  to_string(r.sample_shape).c_str());
      std::printf("  label '%s' %s %s\n", r.layout.label.c_str(), to_string(r.label_dims).c_str(), r.label_dtype.c_str());
      for (size_t c = 0; c < r.channels.size(); ++c)
        std::printf("  channel %2zu: min %-12.6g max %-12.6g mean %-12.6g std %-12.6g\n", c, r.channels[c].min,
                    r.channels[c].max, r.channels[c].mean, r.channels[c].std);
      for (size_t k = 0; k < r.class_fractions.size(); ++k)
        std::printf("  class %zu: %.6f of pixels\n", k, r.class_fractions[k]);
      for (size_t k = 0; k < r.label_components.size(); ++k)
        std::printf("  target %zu: min %-10.6g max %-10.6g mean %-10.6g\n", k, r.label_components[k].min,
                    r.label_components[k].max, r.label_components[k].mean);
    }
  }
  if (a.has("json")) std::cout << all.dump(2) << "\n";
  return 0;
}

int cmd_pack(const Args& a) {
  HALO_CHECK_T(ConfigError, !a.files.empty() && a.has("out"), "pack: give input files or directories and --out DIR");
  std::vector<std::string> files;
  for (const auto& f : a.files)
    for (auto& g : list_files(f)) files.push_back(g);
  H5Dataset ds(files, layout_for(a, files.at(0)), Driver::posix);
  auto shards = pack(ds, a.get("out"), a.num("per-shard", 64), a.get("prefix", "shard"));
  std::printf("packed %lld sample(s) from %zu file(s) into %zu shard(s) in %s\n", (long long)ds.size(), files.size(),
              shards.size(), a.get("out").c_str());
  return 0;
}

int cmd_verify(const Args& a) {
  HALO_CHECK_T(ConfigError, !a.files.empty(), "no files given");
  int64_t nbad = 0, nfiles = 0;
  // Every file is compared with the first file of its format: a data set must be one shape
  // and dtype throughout (training stops at the first file that differs), which no file
  // shows on its own. Keyed by format because one call may check several data sets.
  std::map<std::string, FileReport> first;
  for (const auto& f : a.files) {
    std::vector<BadSample> bad;
    try {
      const FileReport* reference = nullptr;
      try {
        FileReport r = describe_file(f, layout_for(a, f));
        reference = &first.emplace(r.layout.format, r).first->second;
      } catch (const std::exception&) {
        // unreadable: verify_file reports why
      }
      bad = verify_file(f, layout_for(a, f), reference);
    } catch (const std::exception& e) {
      bad.push_back({f, -1, e.what()});
    }
    ++nfiles;
    for (auto& b : bad) {
      if (b.sample < 0) std::printf("BAD %s: %s\n", b.file.c_str(), b.reason.c_str());
      else std::printf("BAD %s sample %lld: %s\n", b.file.c_str(), (long long)b.sample, b.reason.c_str());
    }
    nbad += int64_t(bad.size());
  }
  std::printf("%lld file(s) checked, %lld problem(s)\n", (long long)nfiles, (long long)nbad);
  return nbad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    Args a = parse(argc, argv, 2);
    static const std::map<std::string, std::vector<std::string>> known{
        {"generate", {"format", "out", "samples", "size", "height", "width", "per-shard", "seed"}},
        {"inspect", {"json", "format", "subvolume", "stats"}},
        {"pack", {"out", "per-shard", "format", "subvolume", "stats"}},
        {"verify", {"format", "subvolume", "stats"}}};
    if (auto k = known.find(cmd); k != known.end())
      for (const auto& [name, value] : a.opt)
        HALO_CHECK_T(ConfigError, std::find(k->second.begin(), k->second.end(), name) != k->second.end(),
                     "unknown option --", name, " (halo-data --help lists the options of each command)");
    if (cmd == "generate") return cmd_generate(a);
    if (cmd == "inspect") return cmd_inspect(a);
    if (cmd == "pack") return cmd_pack(a);
    if (cmd == "verify") return cmd_verify(a);
    std::fprintf(stderr, "halo-data: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo-data %s: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
