// KILN_API marks what libkiln.so exports. The library is compiled with
// hidden visibility, so everything without it (graph, kernels, jit and
// runtime internals) stays private to the .so and cannot clash with, or be
// relied on by, the application that loads it.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define KILN_API [[gnu::visibility("default")]]
// For the private `Impl` structs nested in KILN_API classes: a nested class
// takes its enclosing class's visibility, which would export every Impl
// member function from libkiln.so.
#define KILN_HIDDEN [[gnu::visibility("hidden")]]
#else
#define KILN_API
#define KILN_HIDDEN
#endif
