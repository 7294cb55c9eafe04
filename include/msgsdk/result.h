#pragma once

/// @file
/// Result<T>: a value or the Status that explains why there is none.

#include <cstdlib>
#include <cstdio>
#include <type_traits>
#include <utility>
#include <variant>

#include "msgsdk/status.h"

namespace msgsdk {

/// Holds either a T or a non-OK Status. Accessing the value of a failed Result is a
/// programming error: it prints the status and aborts (like absl::StatusOr without
/// exceptions), so check ok() first or use value_or().
/// Thread-safety: a value type; const methods may be called concurrently.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>, "Result<Status> makes no sense");

 public:
  /// A failed result. An OK status here is a bug and becomes kInternal.
  Result(Status status)  // NOLINT(google-explicit-constructor): `return SomeError(...)` reads well
      : data_(status.ok() ? Status(StatusCode::kInternal, "Result built from an OK status")
                          : std::move(status)) {}
  /// A successful result.
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, T> &&
                                                    !std::is_same_v<std::decay_t<U>, Status>>>
  Result(U&& value) : data_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return data_.index() == 1; }

  /// The status: OK when a value is held.
  Status status() const { return ok() ? OkStatus() : std::get<0>(data_); }

  T& value() & { return CheckedValue(); }
  const T& value() const& { return const_cast<Result*>(this)->CheckedValue(); }
  T&& value() && { return std::move(CheckedValue()); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<1>(data_) : static_cast<T>(std::forward<U>(fallback));
  }

  T& operator*() & { return CheckedValue(); }
  const T& operator*() const& { return const_cast<Result*>(this)->CheckedValue(); }
  T&& operator*() && { return std::move(CheckedValue()); }
  T* operator->() { return &CheckedValue(); }
  const T* operator->() const { return &const_cast<Result*>(this)->CheckedValue(); }

 private:
  T& CheckedValue() {
    if (!ok()) {
      std::fprintf(stderr, "msgsdk: value() of a failed Result: %s\n",
                   std::get<0>(data_).ToString().c_str());
      std::abort();
    }
    return std::get<1>(data_);
  }

  std::variant<Status, T> data_;
};

}  // namespace msgsdk

// NOLINTBEGIN(bugprone-macro-parentheses): `lhs` is a declaration, it cannot be parenthesised.

/// Evaluates an expression yielding a Status; returns it from the enclosing function if not OK.
#define MSGSDK_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::msgsdk::Status msgsdk_status_ = (expr);         \
    if (!msgsdk_status_.ok()) return msgsdk_status_;  \
  } while (false)

#define MSGSDK_CONCAT_INNER_(a, b) a##b
#define MSGSDK_CONCAT_(a, b) MSGSDK_CONCAT_INNER_(a, b)

/// `MSGSDK_ASSIGN_OR_RETURN(auto x, Foo());` declares x from a Result or returns its status.
#define MSGSDK_ASSIGN_OR_RETURN(lhs, expr) \
  MSGSDK_ASSIGN_OR_RETURN_IMPL_(MSGSDK_CONCAT_(msgsdk_result_, __LINE__), lhs, expr)
#define MSGSDK_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                                  \
  if (!result.ok()) return result.status();              \
  lhs = std::move(result).value()

// NOLINTEND(bugprone-macro-parentheses)
