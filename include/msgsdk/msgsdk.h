#pragma once

/// @file
/// The msgsdk public API: include this one header.

#include "msgsdk/capabilities.h"
#include "msgsdk/client.h"
#include "msgsdk/message.h"
#include "msgsdk/migration.h"
#include "msgsdk/options.h"
#include "msgsdk/producer.h"
#include "msgsdk/result.h"
#include "msgsdk/status.h"
#include "msgsdk/subscription.h"
