# Per-target defaults for every kv target: C++17, warnings, optional sanitizers.
option(KV_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(KV_WERROR "Treat warnings as errors" OFF)

set(KV_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)

function(kv_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(KV_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(KV_SANITIZE)
    target_compile_options(${target} PRIVATE ${KV_SANITIZER_FLAGS})
    target_link_options(${target} PRIVATE ${KV_SANITIZER_FLAGS})
  endif()
endfunction()
