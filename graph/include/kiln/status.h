// kiln's error channel for graph, kernels and runtime: a Status carries a
// code and a message; StatusOr<T> carries a value or the Status that says why
// there is none. No exception crosses a kiln module boundary.
#pragma once

#include <cassert>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

#include "kiln/export.h"

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller passed something wrong (input name, shape, dtype)
  kInvalidModel,       // the model file or graph is malformed
  kUnsupported,        // valid ONNX that kiln does not implement (op, dtype, attribute)
  kNotFound,           // a file or a named thing is missing
  kIoError,            // a file exists (or is to be created) but reading or writing it failed
  kOutOfRange,         // an index or size outside what the data allows
  kResourceExhausted,  // an allocation failed or a size overflows
  kInternal,           // a kiln bug or a failing dependency (oneDNN, LLVM)
  kDeadlineExceeded,   // a run passed RunOptions::deadline and stopped
  kCancelled,          // a run saw RunOptions::cancel set and stopped
};

KILN_API const char* StatusCodeName(StatusCode code);

class [[nodiscard]] KILN_API Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "<code>: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message starts with `context: `; used to say where
  // an error happened (file, node, op) as it travels outward.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

namespace internal {
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace internal

template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return Status(StatusCode::kInvalidArgument, internal::StrCat(args...));
}
template <typename... Args>
Status InvalidModel(const Args&... args) {
  return Status(StatusCode::kInvalidModel, internal::StrCat(args...));
}
template <typename... Args>
Status Unsupported(const Args&... args) {
  return Status(StatusCode::kUnsupported, internal::StrCat(args...));
}
template <typename... Args>
Status NotFound(const Args&... args) {
  return Status(StatusCode::kNotFound, internal::StrCat(args...));
}
template <typename... Args>
Status IoError(const Args&... args) {
  return Status(StatusCode::kIoError, internal::StrCat(args...));
}
template <typename... Args>
Status OutOfRange(const Args&... args) {
  return Status(StatusCode::kOutOfRange, internal::StrCat(args...));
}
template <typename... Args>
Status ResourceExhausted(const Args&... args) {
  return Status(StatusCode::kResourceExhausted, internal::StrCat(args...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return Status(StatusCode::kInternal, internal::StrCat(args...));
}
template <typename... Args>
Status DeadlineExceeded(const Args&... args) {
  return Status(StatusCode::kDeadlineExceeded, internal::StrCat(args...));
}
template <typename... Args>
Status Cancelled(const Args&... args) {
  return Status(StatusCode::kCancelled, internal::StrCat(args...));
}

// A value of type T, or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : state_(status) {  // NOLINT: implicit by design
    assert(!status.ok() && "StatusOr built from an OK status has no value");
  }
  StatusOr(Status&& status) : state_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(state_).ok() && "StatusOr built from an OK status has no value");
  }
  StatusOr(const T& value) : state_(value) {}        // NOLINT
  StatusOr(T&& value) : state_(std::move(value)) {}  // NOLINT
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, Status> &&
                                        !std::is_same_v<std::decay_t<U>, T>>>
  StatusOr(U&& value) : state_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> state_;
};

}  // namespace kiln

#define KILN_CONCAT_IMPL(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_IMPL(a, b)

// Returns the Status of `expr` from the enclosing function if it is an error.
#define KILN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::kiln::Status kiln_status_ = (expr);        \
    if (!kiln_status_.ok()) return kiln_status_; \
  } while (0)

// `lhs = value of expr`, or returns its error from the enclosing function.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kiln_statusor_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
