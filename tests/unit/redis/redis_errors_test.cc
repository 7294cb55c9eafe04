#include "backends/redis/redis_errors.h"

#include <cerrno>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

namespace msgsdk::redis {
namespace {

using ::testing::HasSubstr;

ErrorScope Scope(std::string_view command = "XADD", std::string_view key = "msgsdk:t:0") {
  ErrorScope scope;
  scope.cluster = "main";
  scope.endpoint = "127.0.0.1:6379";
  scope.command = command;
  scope.key = key;
  scope.user = "app";
  return scope;
}

Status Reply(std::string_view text, ErrorScope scope = Scope()) {
  RawRedisError error;
  error.text = text;
  return MapRedisError(error, scope);
}

Status Io(int sys_errno, std::string_view text, std::string_view command = "XADD") {
  RawRedisError error;
  error.context_error = REDIS_ERR_IO;
  error.sys_errno = sys_errno;
  error.text = text;
  return MapRedisError(error, Scope(command));
}

TEST(RedisErrorsTest, ConnectionRefusedIsUnavailable) {
  const Status s = Io(ECONNREFUSED, "Connection refused", "CONNECT");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("127.0.0.1:6379"));
  EXPECT_THAT(s.message(), HasSubstr("connection refused"));
  EXPECT_THAT(s.message(), HasSubstr("cluster 'main'"));
  // The text wins over a stale errno.
  EXPECT_EQ(Io(0, "Connection refused", "CONNECT").code(), StatusCode::kUnavailable);
}

TEST(RedisErrorsTest, ResetAndClosedAreUnavailable) {
  EXPECT_EQ(Io(ECONNRESET, "Connection reset by peer").code(), StatusCode::kUnavailable);
  EXPECT_EQ(Io(EPIPE, "Broken pipe").code(), StatusCode::kUnavailable);
  RawRedisError eof;
  eof.context_error = REDIS_ERR_EOF;
  eof.text = "Server closed the connection";
  const Status s = MapRedisError(eof, Scope());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("closed the connection"));
}

TEST(RedisErrorsTest, TimeoutsAreDeadlineExceededExceptWhileConnecting) {
  const Status command = Io(EAGAIN, "Resource temporarily unavailable");
  EXPECT_EQ(command.code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(command.message(), HasSubstr("command_timeout_ms"));
  EXPECT_THAT(command.message(), HasSubstr("XADD on key 'msgsdk:t:0'"));
  const Status connect = Io(ETIMEDOUT, "Connection timed out", "CONNECT");
  EXPECT_EQ(connect.code(), StatusCode::kUnavailable);
  EXPECT_THAT(connect.message(), HasSubstr("connect_timeout_ms"));
}

TEST(RedisErrorsTest, AuthenticationErrors) {
  const Status noauth = Reply("NOAUTH Authentication required.");
  EXPECT_EQ(noauth.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(noauth.message(), HasSubstr("requires authentication"));
  EXPECT_THAT(noauth.message(), HasSubstr("`password`"));
  const Status wrongpass =
      Reply("WRONGPASS invalid username-password pair or user is disabled.", Scope("AUTH", ""));
  EXPECT_EQ(wrongpass.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(wrongpass.message(), HasSubstr("rejected the credentials of user 'app'"));
  const Status no_password =
      Reply("ERR AUTH <password> called without any password configured for the default user.");
  EXPECT_EQ(no_password.code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(no_password.message(), HasSubstr("has no password configured"));
}

TEST(RedisErrorsTest, AclRefusalIsPermissionDenied) {
  const Status s = Reply("NOPERM this user has no permissions to run the 'xadd' command");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("ACL user 'app'"));
  EXPECT_THAT(s.message(), HasSubstr("XADD"));
}

TEST(RedisErrorsTest, WrongTypeNamesTheKey) {
  const Status s = Reply("WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("key 'msgsdk:t:0'"));
  EXPECT_THAT(s.message(), HasSubstr("not a stream"));
  EXPECT_THAT(s.message(), HasSubstr("key_prefix"));
}

TEST(RedisErrorsTest, GroupErrors) {
  EXPECT_EQ(Reply("BUSYGROUP Consumer Group name already exists").code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(Reply("NOGROUP No such key 'k' or consumer group 'g'").code(), StatusCode::kNotFound);
}

TEST(RedisErrorsTest, TransientServerStatesAreUnavailable) {
  EXPECT_EQ(Reply("LOADING Redis is loading the dataset in memory").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(Reply("BUSY Redis is busy running a script.").code(), StatusCode::kUnavailable);
  EXPECT_EQ(Reply("MASTERDOWN Link with MASTER is down").code(), StatusCode::kUnavailable);
  EXPECT_EQ(Reply("READONLY You can't write against a read only replica.").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(Reply("MISCONF Redis is configured to save RDB snapshots").code(),
            StatusCode::kUnavailable);
}

TEST(RedisErrorsTest, OtherServerErrors) {
  EXPECT_EQ(Reply("OOM command not allowed when used memory > 'maxmemory'.").code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(Reply("MOVED 3999 127.0.0.1:6381").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reply("CROSSSLOT Keys in request don't hash to the same slot").code(),
            StatusCode::kFailedPrecondition);
  const Status old = Reply("ERR unknown command 'XAUTOCLAIM', with args beginning with: ");
  EXPECT_EQ(old.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(old.message(), HasSubstr("6.2"));
  EXPECT_EQ(Reply("ERR DB index is out of range").code(), StatusCode::kInvalidArgument);
  const Status other = Reply("ERR Invalid stream ID specified as stream command argument");
  EXPECT_EQ(other.code(), StatusCode::kInternal);
  EXPECT_THAT(other.message(), HasSubstr("Invalid stream ID"));
}

TEST(RedisErrorsTest, ProtocolErrorsAreInternal) {
  RawRedisError error;
  error.context_error = REDIS_ERR_PROTOCOL;
  error.text = "Protocol error, got \"H\" as reply type byte";
  const Status s = MapRedisError(error, Scope());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("protocol error"));
}

}  // namespace
}  // namespace msgsdk::redis
