// Shape propagation: fills in the dtype and ShapeInfo of values that ONNX's
// own shape inference (run by the loader) left unknown.
//
// Why: ONNX's inference runs before folding, so it cannot see through a
// Reshape whose shape was computed by a Shape->Gather->Concat chain, nor
// through ops whose output size depends on input data. Once folding has
// turned those operands into constants, the shapes are often knowable; the
// memory planner's size estimates and `kiln info` want them, and Shape nodes
// of now-concrete values fold on the next folding round.
#pragma once

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// One topological sweep over the live nodes. For the common ops
// (elementwise with multidirectional broadcasting, Cast, MatMul, Gemm, Conv
// and pooling, Reshape/Expand/Tile/Pad/ConstantOfShape with constant
// operands, Flatten, Transpose, Concat, Split, Gather, Unsqueeze/Squeeze,
// Slice, Reduce*, ArgMax/ArgMin, Shape, Size, Constant) it computes output
// dtypes and shapes, keeping concrete dims where the inputs have them and
// carrying symbols through where the op preserves a dim.
//
// It also tracks the elements of small 0-D/1-D integer tensors computed
// from shapes (Shape, Gather, Unsqueeze/Squeeze, Concat, Cast, and +-*/
// on known elements), so that a Reshape/Expand/ConstantOfShape whose shape
// operand is such a chain gets a shape like [batch, 16, 4, 16] even though
// folding could not make the operand a constant (symbolic batch).
//
// It only adds knowledge: an undefined dtype is set, an unknown rank is set,
// an unknown dim becomes symbolic or concrete, a symbolic dim becomes
// concrete; a concrete dim and a value with a constant are never touched,
// and where its result disagrees with ONNX's on the rank it keeps ONNX's.
// Unknown ops, malformed attributes and data-dependent outputs simply stay
// unknown. Fails only if the graph has a cycle.
Status PropagateShapes(Graph& graph);

}  // namespace kiln::graph
