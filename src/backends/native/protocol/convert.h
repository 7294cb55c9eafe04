#pragma once

// msgsdk values <-> their wire form (broker.proto).

#include "backends/native/protocol/broker.pb.h"
#include "msgsdk/message.h"

namespace msgsdk::native::protocol {

// The fields a producer sets plus message_id and born_at (the delivery fields too when
// `with_delivery`).
void ToWire(const Message& message, bool with_delivery, wire::Message* out);
// The same, moving the strings out of `message` (bodies are not copied).
void ToWire(Message&& message, bool with_delivery, wire::Message* out);
// Moves the bytes out of `in`. `topic` is filled in (the wire form leaves it to the request).
Message FromWire(wire::Message&& in, const std::string& topic);

}  // namespace msgsdk::native::protocol
