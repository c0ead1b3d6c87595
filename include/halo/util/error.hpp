// Errors with context: every failure says what, where, and (when it can) what to do.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace halo {

/// Base of every exception Halo throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Tensor shapes, dtypes or devices that do not fit an operation or layer.
class ShapeError : public Error {
 public:
  using Error::Error;
};
/// Files, datasets and formats.
class IOError : public Error {
 public:
  using Error::Error;
};
/// Communication: mismatched ranks, failed or stalled collectives.
class DistError : public Error {
 public:
  using Error::Error;
};
/// Invalid configuration values.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Concatenates anything streamable into one string: str("layer ", name, ": ", shape).
template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace halo

/// Throws `ErrType` with the streamed message when `cond` is false.
#define HALO_CHECK_T(ErrType, cond, ...)                     \
  do {                                                       \
    if (!(cond)) throw ErrType(::halo::str(__VA_ARGS__));    \
  } while (0)
#define HALO_CHECK(cond, ...) HALO_CHECK_T(::halo::Error, cond, __VA_ARGS__)
#define HALO_CHECK_SHAPE(cond, ...) HALO_CHECK_T(::halo::ShapeError, cond, __VA_ARGS__)
