#include "backends/native/protocol/convert.h"

#include <utility>

#include "backends/native/storage/message_codec.h"

namespace msgsdk::native::protocol {

void ToWire(const Message& message, bool with_delivery, wire::Message* out) {
  ToWire(Message(message), with_delivery, out);
}

void ToWire(Message&& message, bool with_delivery, wire::Message* out) {
  out->set_key(std::move(message.key));
  out->set_tag(std::move(message.tag));
  auto& properties = *out->mutable_properties();
  for (auto& [name, value] : message.properties) properties[name] = std::move(value);
  out->set_body(std::move(message.body));
  if (message.deliver_at) out->set_deliver_at_ns(ToUnixNanos(*message.deliver_at));
  out->set_message_id(std::move(message.message_id));
  out->set_born_at_ns(ToUnixNanos(message.born_at));
  if (with_delivery) {
    out->set_queue(message.partition);
    out->set_offset(message.offset);
    out->set_stored_at_ns(ToUnixNanos(message.stored_at));
  }
}

Message FromWire(wire::Message&& in, const std::string& topic) {
  Message message;
  message.topic = topic;
  message.key = std::move(*in.mutable_key());
  message.tag = std::move(*in.mutable_tag());
  for (auto& [name, value] : *in.mutable_properties()) {
    message.properties.emplace(name, std::move(value));
  }
  message.body = std::move(*in.mutable_body());
  if (in.has_deliver_at_ns()) message.deliver_at = FromUnixNanos(in.deliver_at_ns());
  message.message_id = std::move(*in.mutable_message_id());
  message.born_at = FromUnixNanos(in.born_at_ns());
  message.partition = in.queue();
  message.offset = in.offset();
  message.stored_at = FromUnixNanos(in.stored_at_ns());
  return message;
}

}  // namespace msgsdk::native::protocol
