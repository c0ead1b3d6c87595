#include "halo/util/log.hpp"

#include <cstdio>
#include <mutex>

namespace halo::log {

namespace {
int g_rank = 0;
int g_size = 1;
Level g_level = Level::info;
std::mutex g_mu;
}  // namespace

void set_rank(int r, int s) {
  g_rank = r;
  g_size = s;
}
void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
int rank() { return g_rank; }

void write(Level lvl, const std::string& message, bool all_ranks) {
  if (lvl < g_level) return;
  if (!all_ranks && g_rank != 0) return;
  std::lock_guard<std::mutex> lock(g_mu);
  FILE* out = lvl >= Level::warn ? stderr : stdout;
  const char* tag = lvl == Level::error ? "error: " : lvl == Level::warn ? "warning: " : "";
  if (g_size > 1 && all_ranks)
    std::fprintf(out, "[rank %d] %s%s\n", g_rank, tag, message.c_str());
  else
    std::fprintf(out, "%s%s\n", tag, message.c_str());
  std::fflush(out);
}

}  // namespace halo::log
