#pragma once

// What the clients of a routing push service report: its ListClients, as the migration
// controller reads client reports (msgsdk::RoutingState).

#include <string>
#include <vector>

#include "msgsdk/client.h"
#include "msgsdk/result.h"

namespace msgsdk::sidecar {

// Every client connected to the routing service at `address` now: its name, the `version:`
// of the version it last ACKed, and its migration progress. Clients that are gone are left
// out: they write and read nothing.
Result<std::vector<RoutingState>> ListRoutingClients(const std::string& address);

}  // namespace msgsdk::sidecar
