# The layering the folders promise, checked when configuring: grammar -> compiler -> plan
# <- runtime. plan/ links LLVM Support only; no runtime library reaches the compiler; lint
# and plan (`mixtape`) never load LibTorch. A violation stops the configure step and names
# the path of links that breaks it.

# Every target `target` links, directly or through others, as "a -> b -> c" paths.
function(mixtape_link_closure target out)
  set(seen "")
  set(queue "${target}")
  set(path_${target} "${target}")
  while(queue)
    list(POP_FRONT queue current)
    if(NOT TARGET ${current})
      continue()
    endif()
    get_target_property(aliased ${current} ALIASED_TARGET)
    if(aliased)
      set(current ${aliased})
    endif()
    get_target_property(direct ${current} LINK_LIBRARIES)
    get_target_property(interface ${current} INTERFACE_LINK_LIBRARIES)
    foreach(dep IN LISTS direct interface)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
      if(NOT dep OR dep MATCHES "-NOTFOUND$" OR dep MATCHES "^\\$<" OR dep IN_LIST seen)
        continue()
      endif()
      list(APPEND seen ${dep})
      list(APPEND queue ${dep})
      set(path_${dep} "${path_${current}} -> ${dep}")
    endforeach()
  endwhile()
  set(paths "")
  foreach(dep IN LISTS seen)
    list(APPEND paths "${path_${dep}}")
  endforeach()
  set(${out} "${paths}" PARENT_SCOPE)
endfunction()

# Fails if `target` reaches a library whose name matches `forbidden` (a regex).
function(mixtape_forbid_links target forbidden why)
  if(NOT TARGET ${target})
    return()
  endif()
  mixtape_link_closure(${target} paths)
  foreach(path IN LISTS paths)
    string(REGEX REPLACE "^.* -> " "" last "${path}")
    get_filename_component(last_name "${last}" NAME)
    if(last MATCHES "${forbidden}" OR last_name MATCHES "${forbidden}")
      message(FATAL_ERROR "layering: ${path}\n  ${why}")
    endif()
  endforeach()
endfunction()

set(MIXTAPE_TORCH_LIBS "^(torch|torch_cpu|torch_cuda|c10|c10_cuda|libtorch.*|libc10.*)$")
mixtape_forbid_links(mixtape_plan "^(mixtape_compiler|mixtape_rundir|mixtape_data|tomlplusplus::tomlplusplus)$"
                     "plan/ is the IR: LLVM Support and mixtape_support only.")
mixtape_forbid_links(mixtape_plan "${MIXTAPE_TORCH_LIBS}" "plan/ never links LibTorch.")
mixtape_forbid_links(mixtape_compiler "${MIXTAPE_TORCH_LIBS}" "lint and plan never load LibTorch.")
mixtape_forbid_links(mixtape "${MIXTAPE_TORCH_LIBS}"
                     "`mixtape` runs lint and plan: runtime commands belong in mixtape-runtime.")
foreach(runtime_library mixtape_rundir mixtape_data mixtape_safetensors mixtape_model_config mixtape_model
        mixtape_train mixtape_merge mixtape_exec mixtape_report mixtape_launch mixtape_dist)
  mixtape_forbid_links(${runtime_library} "^mixtape_compiler$"
                       "the runtime reads plans through plan/ and never links the compiler.")
endforeach()
