#include "jit/depthwise_codegen.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "jit/codegen_target.h"
#include "jit/region_ops.h"

namespace kiln::jit {
namespace {

// The register tile: up to kMaxTilePixels output pixels of a row times up
// to kMaxTileVectors channel vectors, at most half the vector registers as
// accumulators. Each tap then loads its weight vectors once for all the
// tile's pixels, instead of once per pixel.
constexpr int64_t kMaxTileVectors = 4;
constexpr int64_t kMaxTilePixels = 8;

class DepthwiseEmitter {
 public:
  DepthwiseEmitter(llvm::Module& module, const DepthwiseProblem& p, int lanes)
      : module_(module), ctx_(module.getContext()), p_(p), lanes_(lanes) {
    f32_ = llvm::Type::getFloatTy(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    vec_ = llvm::FixedVectorType::get(f32_, static_cast<unsigned>(lanes));
    vectors_ = (p.channels + lanes - 1) / lanes;
    padded_channels_ = vectors_ * lanes;
    tail_lanes_ = static_cast<int>(p.channels - (vectors_ - 1) * lanes);
  }

  Status Emit(const std::string& name, const DepthwiseIo& io, const float* weight, const float* bias,
              const std::string& cpu, const std::string& features);

 private:
  llvm::Value* I64(int64_t v) const { return llvm::ConstantInt::get(i64_, v); }

  // A private constant array of `values`, 64-byte aligned.
  llvm::GlobalVariable* ConstantFloats(const std::vector<float>& values, const char* label) {
    auto* data = llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<float>(values));
    auto* global =
        new llvm::GlobalVariable(module_, data->getType(), true, llvm::GlobalValue::PrivateLinkage, data, label);
    global->setAlignment(llvm::Align(64));
    return global;
  }

  bool IsPartial(int64_t vector_index) const { return vector_index == vectors_ - 1 && tail_lanes_ != lanes_; }
  llvm::Value* TailMask() const {
    std::vector<llvm::Constant*> live;
    for (int l = 0; l < lanes_; ++l) live.push_back(llvm::ConstantInt::getBool(ctx_, l < tail_lanes_));
    return llvm::ConstantVector::get(live);
  }
  llvm::Value* Zero() const { return llvm::ConstantFP::get(vec_, 0.0); }

  // One output row (n, oh).
  struct RowPointers {
    llvm::Value* x_image = nullptr;  // X's image n, channel 0
    llvm::Value* ih0 = nullptr;      // oh * stride_h - pad_top
    llvm::Value* y_row = nullptr;    // Y's row (n, oh), pixel 0, channel 0
    llvm::Value* r_row = nullptr;    // the residual's, or null
  };

  // The tile of `pixels` output pixels from `ow0` on by the channel vectors
  // [first, first + count): bias, taps, residual, activation, store.
  // `tail_first` is `first` as a constant for the tile holding the pixel's
  // last vector (which may be partial), -1 for the tiles of the channel
  // loop (all full). `accs` holds at least pixels * count allocas.
  void EmitTile(llvm::IRBuilderBase& b, const RowPointers& row, llvm::Value* ow0, int64_t pixels, llvm::Value* first,
                int64_t count, int64_t tail_first, const std::vector<llvm::AllocaInst*>& accs);

  // Every channel tile of `pixels` output pixels from `ow0` on.
  void EmitPixels(llvm::IRBuilderBase& b, const RowPointers& row, llvm::Value* ow0, int64_t pixels,
                  const std::vector<llvm::AllocaInst*>& accs);

  // for (i = begin; i < end; ++i) body(i), with begin < end checked first.
  void EmitLoop(llvm::IRBuilderBase& b, llvm::Value* begin, llvm::Value* end, const char* label,
                const std::function<void(llvm::Value*)>& body);

  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  const DepthwiseProblem& p_;
  int lanes_;
  int64_t vectors_ = 0, padded_channels_ = 0;
  int tail_lanes_ = 0;
  llvm::Type* f32_;
  llvm::Type* i64_;
  llvm::FixedVectorType* vec_;
  llvm::GlobalVariable* weights_ = nullptr;  // [tap][padded channel]
  llvm::GlobalVariable* bias_ = nullptr;     // [padded channel]
};

void DepthwiseEmitter::EmitLoop(llvm::IRBuilderBase& b, llvm::Value* begin, llvm::Value* end, const char* label,
                                const std::function<void(llvm::Value*)>& body) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* before = b.GetInsertBlock();
  auto* loop = llvm::BasicBlock::Create(ctx_, label, fn);
  auto* done = llvm::BasicBlock::Create(ctx_, std::string(label) + "_done", fn);
  b.CreateCondBr(b.CreateICmpSLT(begin, end), loop, done);
  b.SetInsertPoint(loop);
  llvm::PHINode* i = b.CreatePHI(i64_, 2, label);
  i->addIncoming(begin, before);
  body(i);
  llvm::Value* next = b.CreateAdd(i, I64(1));
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateCondBr(b.CreateICmpSLT(next, end), loop, done);
  b.SetInsertPoint(done);
}

void DepthwiseEmitter::EmitTile(llvm::IRBuilderBase& b, const RowPointers& row, llvm::Value* ow0, int64_t pixels,
                                llvm::Value* first, int64_t count, int64_t tail_first,
                                const std::vector<llvm::AllocaInst*>& accs) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::Value* c0 = b.CreateMul(first, I64(lanes_), "c0");
  const llvm::Align weight_align(static_cast<uint64_t>(lanes_) * 4);
  // Vectors of the loop's tiles are never the partial one.
  auto partial = [&](int64_t g) { return tail_first >= 0 && IsPartial(tail_first + g); };
  auto load = [&](llvm::Value* pixel, int64_t g) -> llvm::Value* {
    llvm::Value* p = b.CreateInBoundsGEP(f32_, b.CreateInBoundsGEP(f32_, pixel, c0), I64(g * lanes_));
    if (partial(g)) return b.CreateMaskedLoad(vec_, p, llvm::Align(4), TailMask(), Zero());
    return b.CreateAlignedLoad(vec_, p, llvm::Align(4));
  };
  auto acc = [&](int64_t px, int64_t g) { return accs[static_cast<size_t>(px * count + g)]; };

  for (int64_t g = 0; g < count; ++g) {
    llvm::Value* start = Zero();
    if (p_.epilogue.has_bias) {
      start =
          b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(f32_, bias_, b.CreateAdd(c0, I64(g * lanes_))), weight_align);
    }
    for (int64_t px = 0; px < pixels; ++px) b.CreateStore(start, acc(px, g));
  }
  // The taps are loops, not unrolled: the body is already pixels x count
  // FMAs, and unrolling a 5x5 window would multiply the code (and the
  // compile time) by 25 for a few percent.
  EmitLoop(b, I64(0), I64(p_.kernel_h), "kh", [&](llvm::Value* kh) {
    llvm::Value* ih = b.CreateAdd(row.ih0, b.CreateMul(kh, I64(p_.dilation_h)));
    // Unsigned compares: a negative position is a huge one, outside too.
    auto* taps = llvm::BasicBlock::Create(ctx_, "tap_row", fn);
    auto* row_done = llvm::BasicBlock::Create(ctx_, "tap_row_done", fn);
    b.CreateCondBr(b.CreateICmpULT(ih, I64(p_.in_h)), taps, row_done);
    b.SetInsertPoint(taps);
    llvm::Value* x_row = b.CreateInBoundsGEP(f32_, row.x_image, b.CreateMul(ih, I64(p_.in_w * p_.channels)));
    EmitLoop(b, I64(0), I64(p_.kernel_w), "kw", [&](llvm::Value* kw) {
      llvm::Value* t = b.CreateAdd(b.CreateMul(kh, I64(p_.kernel_w)), kw);
      llvm::Value* w_tap = b.CreateInBoundsGEP(f32_, weights_, b.CreateAdd(c0, b.CreateMul(t, I64(padded_channels_))));
      std::vector<llvm::Value*> w(static_cast<size_t>(count));
      for (int64_t g = 0; g < count; ++g) {
        w[static_cast<size_t>(g)] =
            b.CreateAlignedLoad(vec_, b.CreateInBoundsGEP(f32_, w_tap, I64(g * lanes_)), weight_align);
      }
      llvm::Value* iw0 = b.CreateSub(
          b.CreateAdd(b.CreateMul(ow0, I64(p_.stride_w)), b.CreateMul(kw, I64(p_.dilation_w))), I64(p_.pad_left));
      for (int64_t px = 0; px < pixels; ++px) {
        llvm::Value* iw = b.CreateAdd(iw0, I64(px * p_.stride_w));
        auto* tap = llvm::BasicBlock::Create(ctx_, "tap", fn);
        auto* next = llvm::BasicBlock::Create(ctx_, "tap_done", fn);
        b.CreateCondBr(b.CreateICmpULT(iw, I64(p_.in_w)), tap, next);
        b.SetInsertPoint(tap);
        llvm::Value* pixel = b.CreateInBoundsGEP(f32_, x_row, b.CreateMul(iw, I64(p_.channels)));
        for (int64_t g = 0; g < count; ++g) {
          llvm::AllocaInst* a = acc(px, g);
          b.CreateStore(b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {vec_},
                                          {load(pixel, g), w[static_cast<size_t>(g)], b.CreateLoad(vec_, a)}),
                        a);
        }
        b.CreateBr(next);
        b.SetInsertPoint(next);
      }
    });
    b.CreateBr(row_done);
    b.SetInsertPoint(row_done);
  });
  for (int64_t px = 0; px < pixels; ++px) {
    llvm::Value* offset = b.CreateMul(b.CreateAdd(ow0, I64(px)), I64(p_.channels));
    llvm::Value* y_pixel = b.CreateInBoundsGEP(f32_, row.y_row, offset);
    llvm::Value* r_pixel = row.r_row != nullptr ? b.CreateInBoundsGEP(f32_, row.r_row, offset) : nullptr;
    for (int64_t g = 0; g < count; ++g) {
      llvm::Value* y = b.CreateLoad(vec_, acc(px, g));
      if (r_pixel != nullptr) y = b.CreateFAdd(y, load(r_pixel, g));
      y = internal::EmitActivation(b, y, p_.epilogue);
      llvm::Value* dst = b.CreateInBoundsGEP(f32_, b.CreateInBoundsGEP(f32_, y_pixel, c0), I64(g * lanes_));
      if (partial(g)) {
        b.CreateMaskedStore(y, dst, llvm::Align(4), TailMask());
      } else {
        b.CreateAlignedStore(y, dst, llvm::Align(4));
      }
    }
  }
}

void DepthwiseEmitter::EmitPixels(llvm::IRBuilderBase& b, const RowPointers& row, llvm::Value* ow0, int64_t pixels,
                                  const std::vector<llvm::AllocaInst*>& accs) {
  // Tiles of the channel loop hold full vectors only; the pixel's last
  // vector, when partial, is in the unrolled tail tile.
  const int64_t block = std::min(vectors_, kMaxTileVectors);
  const bool partial = tail_lanes_ != lanes_;
  const int64_t loop_blocks = partial ? (vectors_ - 1) / block : vectors_ / block;
  const int64_t tail_first = loop_blocks * block;
  const int64_t tail_count = vectors_ - tail_first;
  if (loop_blocks > 0) {
    EmitLoop(b, I64(0), I64(loop_blocks), "channel_block",
             [&](llvm::Value* cb) { EmitTile(b, row, ow0, pixels, b.CreateMul(cb, I64(block)), block, -1, accs); });
  }
  if (tail_count > 0) EmitTile(b, row, ow0, pixels, I64(tail_first), tail_count, tail_first, accs);
}

Status DepthwiseEmitter::Emit(const std::string& name, const DepthwiseIo& io, const float* weight, const float* bias,
                              const std::string& cpu, const std::string& features) {
  const int64_t taps = p_.kernel_h * p_.kernel_w;
  // [C, 1, KH, KW] -> [tap][channel], zero-padded to whole vectors.
  std::vector<float> packed(static_cast<size_t>(taps * padded_channels_), 0.0f);
  for (int64_t c = 0; c < p_.channels; ++c) {
    for (int64_t t = 0; t < taps; ++t) packed[static_cast<size_t>(t * padded_channels_ + c)] = weight[c * taps + t];
  }
  weights_ = ConstantFloats(packed, "depthwise_weights");
  if (p_.epilogue.has_bias) {
    std::vector<float> padded_bias(static_cast<size_t>(padded_channels_), 0.0f);
    std::copy(bias, bias + p_.channels, padded_bias.begin());
    bias_ = ConstantFloats(padded_bias, "depthwise_bias");
  }

  std::vector<bool> baked(io.num_inputs, true);
  baked[static_cast<size_t>(io.x_input)] = false;
  if (io.residual_input >= 0) baked[static_cast<size_t>(io.residual_input)] = false;
  llvm::IRBuilder<> b(ctx_);
  internal::EntryPrologue entry = internal::EmitEntryPrologue(module_, b, name, /*generic=*/false, cpu, features, baked,
                                                              1, [&](llvm::Value*) { return I64(p_.rows()); });
  internal::SetVectorFunctionAttributes(entry.fn, cpu, features, lanes_);
  // Half the registers accumulate; pixels fill what the channels leave.
  const int64_t block = std::min(vectors_, kMaxTileVectors);
  const int64_t registers = lanes_ >= 16 ? 32 : 16;
  const int64_t tile_pixels = std::clamp<int64_t>(registers / 2 / block, 1, kMaxTilePixels);
  std::vector<llvm::AllocaInst*> accs;
  for (int64_t i = 0; i < tile_pixels * block; ++i) accs.push_back(b.CreateAlloca(vec_, nullptr, "acc"));

  llvm::Value* x = entry.inputs[static_cast<size_t>(io.x_input)];
  llvm::Value* r = io.residual_input >= 0 ? entry.inputs[static_cast<size_t>(io.residual_input)] : nullptr;
  llvm::Value* y = entry.outputs[0];
  const int64_t out_row = p_.out_w * p_.channels;
  const int64_t full_tiles = p_.out_w / tile_pixels;
  const int64_t edge_pixels = p_.out_w % tile_pixels;
  EmitLoop(b, entry.row_begin, entry.row_end, "row", [&](llvm::Value* row_index) {
    llvm::Value* n = b.CreateUDiv(row_index, I64(p_.out_h));
    llvm::Value* oh = b.CreateURem(row_index, I64(p_.out_h));
    RowPointers row;
    row.x_image = b.CreateInBoundsGEP(f32_, x, b.CreateMul(n, I64(p_.in_h * p_.in_w * p_.channels)));
    row.ih0 = b.CreateSub(b.CreateMul(oh, I64(p_.stride_h)), I64(p_.pad_top));
    row.y_row = b.CreateInBoundsGEP(f32_, y, b.CreateMul(row_index, I64(out_row)));
    row.r_row = r != nullptr ? b.CreateInBoundsGEP(f32_, r, b.CreateMul(row_index, I64(out_row))) : nullptr;
    if (full_tiles > 0) {
      EmitLoop(b, I64(0), I64(full_tiles), "pixel_tile",
               [&](llvm::Value* tile) { EmitPixels(b, row, b.CreateMul(tile, I64(tile_pixels)), tile_pixels, accs); });
    }
    // The row's last pixels as one narrower tile: with the taps in loops a
    // second tile shape costs little code, and one pixel at a time would
    // load every weight vector once per FMA.
    if (edge_pixels > 0) EmitPixels(b, row, I64(full_tiles * tile_pixels), edge_pixels, accs);
  });
  b.CreateRetVoid();
  return Status::Ok();
}

}  // namespace

double DepthwiseProblem::flops() const {
  return 2.0 * static_cast<double>(batch * out_h * out_w * channels * kernel_h * kernel_w);
}

Status ValidateDepthwiseProblem(const DepthwiseProblem& p) {
  if (p.batch < 1 || p.in_h < 1 || p.in_w < 1 || p.channels < 1 || p.out_h < 1 || p.out_w < 1) {
    return InvalidArgument("jit: depthwise convolution needs positive sizes, got N=", p.batch, " H=", p.in_h,
                           " W=", p.in_w, " C=", p.channels, " OH=", p.out_h, " OW=", p.out_w);
  }
  if (p.kernel_h < 1 || p.kernel_w < 1 || p.stride_h < 1 || p.stride_w < 1 || p.dilation_h < 1 || p.dilation_w < 1 ||
      p.pad_top < 0 || p.pad_left < 0) {
    return InvalidArgument("jit: depthwise convolution with a bad window: kernel ", p.kernel_h, "x", p.kernel_w,
                           " strides ", p.stride_h, "x", p.stride_w, " dilations ", p.dilation_h, "x", p.dilation_w,
                           " pads ", p.pad_top, ",", p.pad_left);
  }
  const GemmEpilogue& e = p.epilogue;
  if (e.activation == GemmActivation::kClip && !(e.alpha <= e.beta)) {
    return InvalidArgument("jit: depthwise Clip epilogue needs min <= max, got [", e.alpha, ", ", e.beta, "]");
  }
  return Status::Ok();
}

Status EmitDepthwiseEntry(llvm::Module& module, const std::string& name, const DepthwiseProblem& problem,
                          const DepthwiseIo& io, const float* weight, const float* bias, int lanes,
                          const std::string& cpu, const std::string& features) {
  KILN_RETURN_IF_ERROR(ValidateDepthwiseProblem(problem));
  if (weight == nullptr || (problem.epilogue.has_bias && bias == nullptr)) {
    return InvalidArgument("jit: depthwise convolution without its weight or bias");
  }
  if (io.x_input < 0 || static_cast<size_t>(io.x_input) >= io.num_inputs ||
      (io.residual_input >= 0 && static_cast<size_t>(io.residual_input) >= io.num_inputs) ||
      (io.residual_input >= 0) != problem.epilogue.has_residual) {
    return InvalidArgument("jit: depthwise convolution operands do not match its inputs");
  }
  return DepthwiseEmitter(module, problem, lanes).Emit(name, io, weight, bias, cpu, features);
}

StatusOr<std::string> EmitDepthwiseAssembly(const DepthwiseProblem& problem, const float* weight, const float* bias,
                                            const std::string& cpu, const std::string& features) {
  DepthwiseIo io;
  io.num_inputs = problem.epilogue.has_residual ? 2 : 1;
  io.residual_input = problem.epilogue.has_residual ? 1 : -1;
  return internal::EmitAssemblyFor(cpu, features, [&](llvm::Module& module, const internal::GemmIsa& isa) {
    return EmitDepthwiseEntry(module, "kiln_depthwise", problem, io, weight, bias, isa.lanes, cpu, features);
  });
}

}  // namespace kiln::jit
