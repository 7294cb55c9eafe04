#pragma once

// Broker addresses as the routing table and the daemon's flags write them.

#include <cstdint>
#include <string>

#include "msgsdk/status.h"

namespace msgsdk::native::protocol {

// Splits "host:port" (an IPv6 host in brackets: "[::1]:9876"). kInvalidArgument naming the
// address when the host is empty or the port is not a number in [0, 65535].
Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port);

}  // namespace msgsdk::native::protocol
