#pragma once

// Message ids: globally unique and time-ordered, assigned when a message is sent.

#include <cstddef>
#include <string>

#include "msgsdk/message.h"

namespace msgsdk::core {

// 32 lowercase hex characters: 48 bits of Unix milliseconds and a 16-bit sequence (strictly
// increasing within the process, borrowing the next millisecond if 65536 ids are taken in
// one), then 64 random bits drawn once per process so two processes never collide.
// Lexicographic order is send order within a process and millisecond order across them.
// Written over `id`, in the memory it already has when that is large enough.
void WriteMessageId(Timestamp now, std::string& id);
inline constexpr size_t kMessageIdLength = 32;

inline std::string NewMessageId(Timestamp now) {
  std::string id;
  WriteMessageId(now, id);
  return id;
}

}  // namespace msgsdk::core
