#include "msgsdk/status.h"

#include <gtest/gtest.h>

#include <memory>

#include "msgsdk/result.h"

namespace msgsdk {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kOk);
  EXPECT_EQ(status.ToString(), "OK");
  EXPECT_EQ(OkStatus(), Status());
}

TEST(StatusTest, CodesMatchGrpcNumbering) {
  EXPECT_EQ(static_cast<int>(StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(StatusCode::kUnauthenticated), 16);
  EXPECT_EQ(StatusCode::kUnsupported, StatusCode::kUnimplemented);
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
}

TEST(StatusTest, ToStringAndContext) {
  Status status = NotFoundError("topic 'x' has no route");
  EXPECT_EQ(status.ToString(), "NOT_FOUND: topic 'x' has no route");
  Status wrapped = status.WithContext("Client::CreateProducer");
  EXPECT_EQ(wrapped.code(), StatusCode::kNotFound);
  EXPECT_EQ(wrapped.message(), "Client::CreateProducer: topic 'x' has no route");
  EXPECT_TRUE(OkStatus().WithContext("ignored").ok());
}

TEST(StatusTest, OkStatusDropsMessage) {
  Status status(StatusCode::kOk, "nothing");
  EXPECT_TRUE(status.message().empty());
}

TEST(StatusTest, RetriableCodes) {
  EXPECT_TRUE(UnavailableError("x").IsRetriable());
  EXPECT_TRUE(DeadlineExceededError("x").IsRetriable());
  EXPECT_TRUE(ResourceExhaustedError("x").IsRetriable());
  EXPECT_TRUE(AbortedError("x").IsRetriable());
  EXPECT_FALSE(InvalidArgumentError("x").IsRetriable());
  EXPECT_FALSE(UnsupportedError("x").IsRetriable());
  EXPECT_FALSE(DataLossError("x").IsRetriable());
  EXPECT_FALSE(OkStatus().IsRetriable());
}

Result<int> Half(int value) {
  if (value % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(value));
  return value / 2;
}

Result<int> Quarter(int value) {
  MSGSDK_ASSIGN_OR_RETURN(int half, Half(value));
  MSGSDK_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> good = Half(8);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 4);
  EXPECT_TRUE(good.status().ok());
  Result<int> bad = Half(3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(ResultTest, MacrosPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd: 3");
}

TEST(ResultTest, OkStatusBecomesInternal) {
  Result<int> result{OkStatus()};
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> result(std::make_unique<int>(7));
  std::unique_ptr<int> taken = std::move(result).value();
  EXPECT_EQ(*taken, 7);
}

TEST(ResultDeathTest, ValueOfFailureAborts) {
  Result<int> bad = InvalidArgumentError("nope");
  EXPECT_DEATH((void)bad.value(), "INVALID_ARGUMENT: nope");
}

}  // namespace
}  // namespace msgsdk
