#pragma once

// Records of one type that are reused send after send (the core's SendAsync records, a
// backend's pending sends), carved out of 16 KiB blocks instead of taken from malloc one by
// one. Not thread-safe: the owner locks.
//
// Why blocks: records made one at a time, as a burst of sends needs them, land among the
// small chunks the client library allocates for every message (librdkafka: the record, its
// headers) and stay there while they are reused. That library's memory then spreads over
// more cache lines and pages than it would alone, and every one of its allocations and frees
// gets slower: measured on the Kafka producer, this cost a sending thread about a quarter of
// its time per record, more than everything the SDK itself does per send. Records in blocks
// of their own keep apart from that churn, and next to each other.
//
// Records stay constructed while spare, so what a record keeps between uses (a reference it
// would otherwise take and drop per send) stays. A block whose records are all spare goes
// back to malloc once more than `max_spare` records are spare: the slab keeps what a steady
// stream needs, not the peak of a burst.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <utility>

#include "core/prefetch.h"

namespace msgsdk::core {

template <typename T>
class RecordSlab {
 public:
  // `construct(where)` makes a record at `where` (each record of a new block, once).
  RecordSlab(std::function<void(void* where)> construct, size_t max_spare)
      : construct_(std::move(construct)), max_spare_(max_spare) {}
  // Frees every block: all records must be spare (or never used again).
  ~RecordSlab() {
    while (partial_ != nullptr) FreeBlock(partial_);
    while (full_ != nullptr) FreeBlock(full_);
  }
  RecordSlab(const RecordSlab&) = delete;
  RecordSlab& operator=(const RecordSlab&) = delete;

  // A spare record, from the block a record was last given back to (its lines are the most
  // likely to be in cache), or from a new block.
  T* Take() {
    if (partial_ == nullptr) NewBlock();
    Block* block = partial_;
    if (block->spare == kPerBlock) --empty_blocks_;
    T* record = block->record(block->spare_index[--block->spare]);
    --spare_;
    if (block->spare == 0) {
      Move(block, &partial_, &full_);
    } else {
      // The next Take's record, loaded ahead: whoever gave it back wrote it last, perhaps on
      // another core.
      PrefetchForWrite(block->record(block->spare_index[block->spare - 1]), sizeof(T));
    }
    return record;
  }

  // `record`, taken from this slab, is spare again.
  void Give(T* record) {
    Block* block = BlockOf(record);
    if (block->spare == 0) Move(block, &full_, &partial_);
    block->spare_index[block->spare++] = block->index(record);
    ++spare_;
    // To the front, so Take reuses this block next.
    if (partial_ != block) {
      Unlink(block, &partial_);
      Link(block, &partial_);
    }
    if (block->spare == kPerBlock && ++empty_blocks_ > 1 && spare_ > max_spare_) {
      --empty_blocks_;
      FreeBlock(block);
    }
  }

  // Calls `visit(record)` for every record the slab holds, taken or spare: for an owner that
  // needs, rarely, to find the records in use (it marks them itself).
  template <typename Visit>
  void ForEach(Visit visit) {
    for (Block* list : {partial_, full_}) {
      for (Block* block = list; block != nullptr; block = block->next) {
        for (size_t i = 0; i < kPerBlock; ++i) visit(block->record(i));
      }
    }
  }

  // Records taken and not given back.
  size_t in_use() const { return blocks_ * kPerBlock - spare_; }

 private:
  static constexpr size_t kBlockBytes = size_t{16} << 10;
  struct Block;
  struct Header {
    Block* prev = nullptr;
    Block* next = nullptr;
    uint16_t spare = 0;  // entries of spare_index in use
  };
  // Records per block: what fits after the header and an index per record.
  static constexpr size_t kPerBlock =
      (kBlockBytes - sizeof(Header) - alignof(T)) / (sizeof(T) + sizeof(uint16_t));
  static_assert(kPerBlock >= 8 && kPerBlock <= UINT16_MAX, "a record too large for a block");
  static_assert(alignof(T) <= 64, "records are aligned within a block, to 64 at most");

  struct Block : Header {
    uint16_t spare_index[kPerBlock];  // stack of the spare records' indexes
    alignas(T) std::byte storage[kPerBlock * sizeof(T)];

    T* record(size_t i) { return std::launder(reinterpret_cast<T*>(storage + i * sizeof(T))); }
    uint16_t index(const T* record) const {
      return static_cast<uint16_t>((reinterpret_cast<const std::byte*>(record) - storage) /
                                   sizeof(T));
    }
  };
  static_assert(sizeof(Block) <= kBlockBytes);

  static Block* BlockOf(T* record) {
    return reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(record) & ~(kBlockBytes - 1));
  }

  // Adds a block of spare records at the front of partial_.
  void NewBlock() {
    void* memory = ::operator new (kBlockBytes, std::align_val_t{kBlockBytes});
    auto* block = new (memory) Block;
    // Constructed back to front, so the spare stack hands out the first record first.
    for (size_t i = kPerBlock; i-- > 0;) {
      construct_(block->record(i));
      block->spare_index[block->spare++] = static_cast<uint16_t>(i);
    }
    ++blocks_;
    ++empty_blocks_;
    spare_ += kPerBlock;
    Link(block, &partial_);
  }

  // Destroys a block's records (all spare) and gives its memory back.
  void FreeBlock(Block* block) {
    Unlink(block, block->spare == 0 ? &full_ : &partial_);
    for (size_t i = 0; i < kPerBlock; ++i) block->record(i)->~T();
    spare_ -= block->spare;
    --blocks_;
    block->~Block();
    ::operator delete (block, std::align_val_t{kBlockBytes});
  }

  static void Link(Block* block, Block** list) {
    block->prev = nullptr;
    block->next = *list;
    if (*list != nullptr) (*list)->prev = block;
    *list = block;
  }
  static void Unlink(Block* block, Block** list) {
    if (block->prev != nullptr) block->prev->next = block->next;
    if (block->next != nullptr) block->next->prev = block->prev;
    if (*list == block) *list = block->next;
    block->prev = block->next = nullptr;
  }
  static void Move(Block* block, Block** from, Block** to) {
    Unlink(block, from);
    Link(block, to);
  }

  const std::function<void(void*)> construct_;
  const size_t max_spare_;
  Block* partial_ = nullptr;  // blocks with a spare record, the one given to last first
  Block* full_ = nullptr;     // blocks with none
  size_t blocks_ = 0;
  size_t empty_blocks_ = 0;  // blocks whose records are all spare
  size_t spare_ = 0;
};

}  // namespace msgsdk::core
