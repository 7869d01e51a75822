// kiln's Status: every code has a name, the helper constructors set the
// code they are named after, and context is prepended as errors travel.
#include "kiln/status.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace kiln {
namespace {

TEST(StatusTest, EveryCodeHasItsOwnName) {
  const StatusCode codes[] = {StatusCode::kOk,          StatusCode::kInvalidArgument,   StatusCode::kInvalidModel,
                              StatusCode::kUnsupported, StatusCode::kNotFound,          StatusCode::kIoError,
                              StatusCode::kOutOfRange,  StatusCode::kResourceExhausted, StatusCode::kInternal};
  std::set<std::string> names;
  for (StatusCode code : codes) {
    const std::string name = StatusCodeName(code);
    EXPECT_NE(name, "unknown") << static_cast<int>(code);
    names.insert(name);
  }
  EXPECT_EQ(names.size(), std::size(codes));
  EXPECT_STREQ(StatusCodeName(StatusCode::kIoError), "I/O error");
}

TEST(StatusTest, HelpersSetTheirCodeAndJoinTheMessage) {
  const Status io = IoError("cannot write '", "out.json", "': ", 28);
  EXPECT_EQ(io.code(), StatusCode::kIoError);
  EXPECT_EQ(io.message(), "cannot write 'out.json': 28");
  EXPECT_EQ(io.ToString(), "I/O error: cannot write 'out.json': 28");
  EXPECT_EQ(NotFound("x").code(), StatusCode::kNotFound);
  EXPECT_EQ(Internal("x").code(), StatusCode::kInternal);
  EXPECT_EQ(Unsupported("x").code(), StatusCode::kUnsupported);
  EXPECT_EQ(Status::Ok().ToString(), "OK");
}

TEST(StatusTest, WithContextKeepsCodeAndPrependsContext) {
  const Status s = IoError("disk full").WithContext("report");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "report: disk full");
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
}

}  // namespace
}  // namespace kiln
