#pragma once

// Message ids: globally unique and time-ordered, assigned when a message is sent.

#include <cstddef>
#include <string>

#include "msgsdk/message.h"

namespace msgsdk::core {

// 32 lowercase hex characters: 48 bits of Unix milliseconds and 16 bits of the 16-nanosecond
// step within the millisecond (raised so that ids increase within a process, borrowing the next
// millisecond if need be), then 40 random bits drawn once per process and 24 bits numbering
// the sending thread, so that neither two threads nor two processes collide.
// Lexicographic order is send order within a process (for sends that follow one another,
// from any threads) and millisecond order across processes.
// Written over `id`, in the memory it already has when that is large enough.
void WriteMessageId(Timestamp now, std::string& id);
inline constexpr size_t kMessageIdLength = 32;

inline std::string NewMessageId(Timestamp now) {
  std::string id;
  WriteMessageId(now, id);
  return id;
}

}  // namespace msgsdk::core
