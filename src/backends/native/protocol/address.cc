#include "backends/native/protocol/address.h"

#include <charconv>

namespace msgsdk::native::protocol {

Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgumentError("address '" + address + "': " + why +
                                " (expected host:port, e.g. 127.0.0.1:9876 or [::1]:9876)");
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string h = address.substr(0, colon);
  const std::string p = address.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return bad("an IPv6 host must be written in brackets");
  }
  if (h.empty()) return bad("empty host");
  unsigned value = 0;
  auto [end, error] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || error != std::errc() || end != p.data() + p.size() || value > 65535) {
    return bad("port '" + p + "' is not a number in [0, 65535]");
  }
  *host = std::move(h);
  *port = static_cast<uint16_t>(value);
  return OkStatus();
}

}  // namespace msgsdk::native::protocol
