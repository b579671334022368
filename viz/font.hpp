// font.hpp: a built-in 5x7 bitmap font for printable ASCII (32..126) and text drawing on an Image,
// horizontal or rotated to read bottom-to-top (for y-axis labels). Enough for chart labels.
// Not here: proportional spacing, kerning, Unicode, anti-aliasing, line breaks.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "viz/image.hpp"

namespace bitgrad::viz {

// Glyph geometry at scale 1: each glyph is kGlyphWidth x kGlyphHeight pixels; characters are
// kAdvance pixels apart (one blank column between glyphs). At scale s every font pixel is an s x s
// block, so a character advances kAdvance * s pixels and stands kGlyphHeight * s pixels tall.
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;
inline constexpr int kAdvance = 6;

// Seven rows, top first; bit 4 (0x10) of a row is its leftmost pixel, bit 0 its rightmost.
using Glyph = std::array<uint8_t, kGlyphHeight>;

// The glyph of `c`; characters outside 32..126 get the glyph of '?'.
const Glyph& glyph(char c);

// Width in pixels of `text` drawn at `scale`: text.size() * kAdvance * scale (the last character's
// trailing blank column included).
int text_width(std::string_view text, int scale = 1);

// Draws `text` left to right with the top-left corner of its first glyph at (x, y); only the
// glyph pixels are set (the background shows through). Clipped to the image. Throws Error unless
// 1 <= scale <= 64.
void draw_text(Image& image, int x, int y, std::string_view text, Rgb color, int scale = 1);

// Draws `text` rotated 90 degrees counter-clockwise, reading bottom to top, as on a y axis. The
// rotated text occupies the box with top-left corner (x, y), kGlyphHeight * scale pixels wide and
// text_width(text, scale) pixels tall; its first character is at the bottom. Clipped to the image.
void draw_text_up(Image& image, int x, int y, std::string_view text, Rgb color, int scale = 1);

}  // namespace bitgrad::viz
