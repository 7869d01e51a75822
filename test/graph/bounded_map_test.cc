// BoundedMap: lookups, inserts and replacements, and the start-over policy
// when it reaches its capacity.
#include "graph/bounded_map.h"

#include <gtest/gtest.h>

#include <string>

namespace kiln {
namespace {

TEST(BoundedMap, FindsWhatWasPutAndReplaces) {
  BoundedMap<std::string, int> map(4);
  EXPECT_EQ(map.Find("a"), nullptr);
  map.Put("a", 1);
  map["b"] = 2;
  ASSERT_NE(map.Find("a"), nullptr);
  EXPECT_EQ(*map.Find("a"), 1);
  EXPECT_EQ(map["b"], 2);
  map.Put("a", 3);
  EXPECT_EQ(*map.Find("a"), 3);
  EXPECT_EQ(map.size(), 2u);
  map.Erase("a");
  EXPECT_EQ(map.Find("a"), nullptr);
  EXPECT_EQ(map.size(), 1u);
}

TEST(BoundedMap, StartsOverWhenANewKeyFindsItFull) {
  BoundedMap<int, int> map(3);
  for (int k = 0; k < 3; ++k) map[k] = k;
  EXPECT_EQ(map.size(), 3u);
  // Existing keys never evict anything.
  map.Put(1, 10);
  ++map[2];
  EXPECT_EQ(map.size(), 3u);
  // A fourth key clears the map first, then holds only itself.
  map.Put(3, 30);
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map.Find(0), nullptr);
  ASSERT_NE(map.Find(3), nullptr);
  EXPECT_EQ(*map.Find(3), 30);
  // operator[] on a new key in a full map does the same.
  map[4];
  map[5];
  EXPECT_EQ(map.size(), 3u);
  map[6] = 60;
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map[6], 60);
  EXPECT_EQ(map.capacity(), 3u);
}

}  // namespace
}  // namespace kiln
