// The translation unit that carries the precompiled <torch/torch.h> (learner/CMakeLists.txt).
