# EmbedText.cmake: turns a text file into a C header with one NUL-terminated array.
# Usage: cmake -DIN=file -DOUT=header -DNAME=symbol -P EmbedText.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* Generated from ${IN} by cmake/EmbedText.cmake. */\n"
    "static const char ${NAME}[] = {${bytes} 0x00};\n")
