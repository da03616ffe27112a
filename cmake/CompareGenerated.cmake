# cmake -DFILES="generated|checked_in|..." -P CompareGenerated.cmake
# Fails, naming each checked-in file that differs from its generated twin
# and the command that refreshes them.
set(stale)
string(REPLACE "|" ";" FILES "${FILES}")
list(LENGTH FILES count)
math(EXPR last "${count} - 1")
foreach(i RANGE 0 ${last} 2)
  math(EXPR j "${i} + 1")
  list(GET FILES ${i} generated)
  list(GET FILES ${j} checked_in)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files
    ${generated} ${checked_in} RESULT_VARIABLE differs)
  if(differs)
    list(APPEND stale ${checked_in})
  endif()
endforeach()
if(stale)
  string(REPLACE ";" "\n  " stale "${stale}")
  message(FATAL_ERROR "generated files are out of date:\n  ${stale}\n"
    "run: ninja -C build loom-update-op-table (and commit them)")
endif()
message(STATUS "the checked-in op table matches its TableGen")
