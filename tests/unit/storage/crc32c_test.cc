#include "backends/native/storage/crc32c.h"

#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace msgsdk::native {
namespace {

using crc32c_internal::ExtendHardware;
using crc32c_internal::ExtendPortable;
using crc32c_internal::HardwareAvailable;

TEST(Crc32cTest, KnownVectors) {
  // From RFC 3720 (iSCSI), appendix B.4, and the usual check value.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xFF');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(ascending.data(), ascending.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32cTest, PortableAndHardwareAgreeOnEveryLengthAndAlignment) {
  if (!HardwareAvailable()) GTEST_SKIP() << "this CPU has no SSE4.2";
  std::mt19937 rng(42);
  std::string data(16384 + 16, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t align = 0; align < 8; ++align) {
    // Around every length where the hardware path changes how it cuts the input: rounds of
    // three 32-, 64-, 256- and 2048-byte blocks, then words and bytes.
    for (size_t size :
         {0,   1,   3,   7,   8,   9,   15,   16,   31,   63,   64,   100,  191,  192,  193,
          228, 383, 384, 767, 768, 769, 1000, 1150, 4096, 6143, 6144, 6145, 7000, 16384}) {
      EXPECT_EQ(ExtendPortable(0, data.data() + align, size),
                ExtendHardware(0, data.data() + align, size))
          << "size " << size << " alignment " << align;
    }
  }
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string a = "hello, ";
  const std::string b = "commit log";
  const std::string ab = a + b;
  EXPECT_EQ(Crc32cExtend(Crc32c(a.data(), a.size()), b.data(), b.size()),
            Crc32c(ab.data(), ab.size()));
  EXPECT_EQ(ExtendPortable(ExtendPortable(0, a.data(), a.size()), b.data(), b.size()),
            Crc32c(ab.data(), ab.size()));
}

TEST(Crc32cTest, DetectsSingleBitFlips) {
  std::string data(256, 'x');
  const uint32_t original = Crc32c(data.data(), data.size());
  for (size_t i = 0; i < data.size(); i += 17) {
    std::string flipped = data;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    EXPECT_NE(Crc32c(flipped.data(), flipped.size()), original) << "byte " << i;
  }
}

}  // namespace
}  // namespace msgsdk::native
