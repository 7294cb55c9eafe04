#pragma once

// Assertions on Status that print the status when they fail.

#include <gtest/gtest.h>

#include "msgsdk/status.h"

#define MSGSDK_EXPECT_OK(expr)                                   \
  do {                                                           \
    const ::msgsdk::Status msgsdk_status_ = (expr);              \
    EXPECT_TRUE(msgsdk_status_.ok()) << msgsdk_status_.ToString(); \
  } while (false)

#define MSGSDK_ASSERT_OK(expr)                                   \
  do {                                                           \
    const ::msgsdk::Status msgsdk_status_ = (expr);              \
    ASSERT_TRUE(msgsdk_status_.ok()) << msgsdk_status_.ToString(); \
  } while (false)
