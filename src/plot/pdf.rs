//! A plotters drawing backend that writes a one-page vector PDF: lines, paths, rectangles,
//! circles and polygons as PDF path operators, text as real text in DejaVu Sans, embedded as a
//! subset of the glyphs the page uses (a CID-keyed TrueType font with a ToUnicode map, so the
//! text can be searched and copied). The objects are written by `pdf-writer` and the subset cut
//! by `subsetter` (both from the Typst project, pure Rust), the streams compressed by
//! `miniz_oxide`, which the PNG encoder already brings.
//!
//! Text is laid out exactly as plotters lays it out on the bitmap backend (its layout box, its
//! anchors, its baseline at half the font size below the box's top), so the PDF matches the
//! PNG. One pixel is 0.75 pt (96 pixels per inch, the convention SVG follows), and the page
//! holds no date or identifier: the same chart gives the same bytes.

use std::collections::BTreeMap;

use ab_glyph::{Font, FontRef, GlyphId};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Name, Pdf, Rect, Ref, Str};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, IntoDrawingArea};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontTransform,
};

use super::FONT;

/// Points per pixel.
const PT: f32 = 0.75;
/// The font's name in the file (the subset tag is added before it).
const FONT_NAME: &str = "DejaVuSans";

/// Draws one page of `size` pixels with `draw` and returns the PDF file.
pub fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<PdfBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let font = FontRef::try_from_slice(FONT).map_err(|e| e.to_string())?;
    let mut page = Page::default();
    {
        let area = PdfBackend {
            page: &mut page,
            font: &font,
            size,
        }
        .into_drawing_area();
        draw(&area)?;
        area.present().map_err(|e| e.to_string())?;
    }
    page.finish(size, &font)
}

/// What a page has drawn so far.
#[derive(Default)]
struct Page {
    /// The content stream's operators, in pixel coordinates (the page's transform maps them).
    content: Vec<u8>,
    /// Glyphs used, by id in the full font, with the character each shows.
    glyphs: BTreeMap<u16, char>,
    /// Opacities used (in 1/255), each an ExtGState named `G<value>`.
    alphas: std::collections::BTreeSet<u8>,
    /// Glyph runs: the content bytes between `[` and `]` are glyph ids of the full font, to be
    /// renumbered to the subset's once it is cut. (Offset of each run's ids, number of ids.)
    runs: Vec<(usize, usize)>,
}

/// The drawing backend: one page in progress.
pub struct PdfBackend<'a> {
    page: &'a mut Page,
    font: &'a FontRef<'static>,
    size: (u32, u32),
}

/// A number in the content stream: at most three decimals, no trailing zeros.
fn num(out: &mut Vec<u8>, v: f64) {
    let r = (v * 1000.0).round() / 1000.0;
    let s = format!("{r}");
    out.extend_from_slice(if s == "-0" { b"0" } else { s.as_bytes() });
}

impl PdfBackend<'_> {
    fn ops(&mut self, parts: &[f64], op: &str) {
        let c = &mut self.page.content;
        for &p in parts {
            num(c, p);
            c.push(b' ');
        }
        c.extend_from_slice(op.as_bytes());
        c.push(b'\n');
    }

    /// Sets the opacity (shared by stroke and fill) and colour for the next operation.
    fn paint(&mut self, color: BackendColor, stroke: bool) {
        let a = (color.alpha.clamp(0.0, 1.0) * 255.0).round() as u8;
        self.page.alphas.insert(a);
        self.page.content.extend_from_slice(format!("/G{a} gs\n").as_bytes());
        let (r, g, b) = color.rgb;
        let f = |v: u8| f64::from(v) / 255.0;
        self.ops(&[f(r), f(g), f(b)], if stroke { "RG" } else { "rg" });
    }

    fn stroke_style<S: BackendStyle>(&mut self, style: &S) -> bool {
        if style.color().alpha == 0.0 {
            return false;
        }
        self.paint(style.color(), true);
        self.ops(&[f64::from(style.stroke_width().max(1))], "w");
        true
    }
}

/// The error type of the PDF backend (it never fails while drawing).
#[derive(Debug)]
pub struct PdfError(String);

impl std::fmt::Display for PdfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PdfError {}

type Drawn = Result<(), DrawingErrorKind<PdfError>>;

impl DrawingBackend for PdfBackend<'_> {
    type ErrorType = PdfError;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Drawn {
        Ok(())
    }

    fn present(&mut self) -> Drawn {
        Ok(())
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn {
        if color.alpha > 0.0 {
            self.paint(color, false);
            self.ops(&[f64::from(point.0), f64::from(point.1), 1.0, 1.0], "re f");
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Drawn {
        if self.stroke_style(style) {
            self.ops(&[f64::from(from.0), f64::from(from.1)], "m");
            self.ops(&[f64::from(to.0), f64::from(to.1)], "l S");
        }
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(&mut self, ul: BackendCoord, br: BackendCoord, style: &S, fill: bool) -> Drawn {
        let (x0, y0) = (f64::from(ul.0.min(br.0)), f64::from(ul.1.min(br.1)));
        let (w, h) = (f64::from((br.0 - ul.0).abs()), f64::from((br.1 - ul.1).abs()));
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        if fill {
            // The bitmap backend fills both corners' pixels: one pixel more each way.
            self.paint(style.color(), false);
            self.ops(&[x0, y0, w + 1.0, h + 1.0], "re f");
        } else if self.stroke_style(style) {
            self.ops(&[x0, y0, w, h], "re S");
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Drawn {
        let points: Vec<BackendCoord> = path.into_iter().collect();
        if points.len() < 2 || !self.stroke_style(style) {
            return Ok(());
        }
        self.ops(&[1.0], "j"); // round joins, as the bitmap's thick polylines look
        for (i, p) in points.iter().enumerate() {
            self.ops(&[f64::from(p.0), f64::from(p.1)], if i == 0 { "m" } else { "l" });
        }
        self.ops(&[0.0], "j S");
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(&mut self, center: BackendCoord, radius: u32, style: &S, fill: bool) -> Drawn {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        if fill {
            self.paint(style.color(), false);
        } else {
            self.stroke_style(style);
        }
        // Four cubic Béziers, κ = 4(√2 − 1)/3 of the radius from each end.
        let (cx, cy, r) = (f64::from(center.0), f64::from(center.1), f64::from(radius));
        let k = 0.552_284_749_8 * r;
        self.ops(&[cx + r, cy], "m");
        self.ops(&[cx + r, cy + k, cx + k, cy + r, cx, cy + r], "c");
        self.ops(&[cx - k, cy + r, cx - r, cy + k, cx - r, cy], "c");
        self.ops(&[cx - r, cy - k, cx - k, cy - r, cx, cy - r], "c");
        self.ops(&[cx + k, cy - r, cx + r, cy - k, cx + r, cy], "c");
        self.ops(&[], if fill { "f" } else { "S" });
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Drawn {
        let points: Vec<BackendCoord> = vert.into_iter().collect();
        if points.len() < 3 || style.color().alpha == 0.0 {
            return Ok(());
        }
        self.paint(style.color(), false);
        for (i, p) in points.iter().enumerate() {
            self.ops(&[f64::from(p.0), f64::from(p.1)], if i == 0 { "m" } else { "l" });
        }
        self.ops(&[], "h f");
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Drawn {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        // plotters' own layout (as the bitmap backend draws it): the box, the anchor, and the
        // baseline half the size below the box's top.
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let size = style.size();
        let (lx, ly) = (f64::from(dx - min_x), f64::from(dy - min_y) + size / 2.0);
        // Text direction and the glyphs' up, in pixel coordinates (y down).
        let (a, b, c, d) = match style.transform() {
            FontTransform::None => (1.0, 0.0, 0.0, -1.0),
            FontTransform::Rotate90 => (0.0, 1.0, 1.0, 0.0),
            FontTransform::Rotate180 => (-1.0, 0.0, 0.0, 1.0),
            FontTransform::Rotate270 => (0.0, -1.0, -1.0, 0.0),
        };
        let (ox, oy) = (f64::from(pos.0) + a * lx - c * ly, f64::from(pos.1) + b * lx - d * ly);
        // ab_glyph scales the font so that ascent − descent is `size` pixels.
        let font = self.font;
        let upem = f64::from(font.units_per_em().unwrap_or(2048.0));
        let em = size * upem / f64::from(font.height_unscaled());
        self.paint(color, false);
        self.page.content.extend_from_slice(b"BT\n/F1 ");
        num(&mut self.page.content, em);
        self.page.content.extend_from_slice(b" Tf\n");
        self.ops(&[a, b, c, d, ox, oy], "Tm");
        self.page.content.push(b'[');
        let start = self.page.content.len();
        let mut prev: Option<GlyphId> = None;
        let mut count = 0;
        for ch in text.chars() {
            let g = font.glyph_id(ch);
            if let Some(p) = prev {
                let kern = f64::from(font.kern_unscaled(p, g));
                if kern != 0.0 {
                    self.page.content.push(b' ');
                    num(&mut self.page.content, -kern * 1000.0 / upem);
                    self.page.content.push(b' ');
                }
            }
            // Each glyph as <gggg>, four hex digits: renumbered in place once the subset exists.
            self.page.content.extend_from_slice(format!("<{:04x}>", g.0).as_bytes());
            self.page.glyphs.entry(g.0).or_insert(ch);
            prev = Some(g);
            count += 1;
        }
        self.page.runs.push((start, count));
        self.page.content.extend_from_slice(b"] TJ\nET\n");
        Ok(())
    }
}

/// The font's bounding box (xMin, yMin, xMax, yMax in font units) from its `head` table.
fn font_bbox(ttf: &[u8]) -> [i16; 4] {
    let u16_at = |i: usize| u16::from_be_bytes([ttf[i], ttf[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([ttf[i], ttf[i + 1], ttf[i + 2], ttf[i + 3]]) as usize;
    let tables = u16_at(4) as usize;
    (0..tables)
        .map(|t| 12 + 16 * t)
        .find(|&e| &ttf[e..e + 4] == b"head")
        .map(|e| {
            let head = u32_at(e + 8);
            [36, 38, 40, 42].map(|o| u16_at(head + o) as i16)
        })
        .unwrap_or([0, -250, 1000, 1000])
}

impl Page {
    /// Cuts the font subset, renumbers the glyphs and writes the file.
    fn finish(mut self, size: (u32, u32), font: &FontRef<'_>) -> Result<Vec<u8>, String> {
        // Glyph 0 (.notdef) stays 0; the others take 1, 2, … in the order of their old ids.
        let mut remapper = subsetter::GlyphRemapper::new();
        for &g in self.glyphs.keys() {
            remapper.remap(g);
        }
        let subset = subsetter::subset(FONT, 0, &remapper).map_err(|e| format!("font subset: {e}"))?;
        for &(start, count) in &self.runs {
            let mut at = start;
            for _ in 0..count {
                // Skip a kerning number, if any, up to the glyph's '<'.
                while self.content[at] != b'<' {
                    at += 1;
                }
                let hex = std::str::from_utf8(&self.content[at + 1..at + 5]).expect("ascii");
                let old = u16::from_str_radix(hex, 16).expect("hex written above");
                let new = remapper.get(old).expect("every glyph used was remapped");
                self.content[at + 1..at + 5].copy_from_slice(format!("{new:04x}").as_bytes());
                at += 6;
            }
        }

        let (w, h) = (size.0 as f32 * PT, size.1 as f32 * PT);
        let mut content = Content::new();
        // Pixels to points, y pointing down as in the backend's coordinates.
        content.transform([PT, 0.0, 0.0, -PT, 0.0, h]);
        let mut stream = content.finish().to_vec();
        stream.extend_from_slice(&self.content);

        let mut ids = (1..).map(Ref::new);
        let mut next = || ids.next().expect("unbounded");
        let (catalog, pages, page, contents) = (next(), next(), next(), next());
        let (type0, cid, descriptor, file, cmap) = (next(), next(), next(), next(), next());
        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(pages);
        pdf.pages(pages).kids([page]).count(1);
        let alpha_ids: Vec<(u8, Ref)> = self.alphas.iter().map(|&a| (a, next())).collect();
        {
            let mut p = pdf.page(page);
            p.media_box(Rect::new(0.0, 0.0, w, h)).parent(pages).contents(contents);
            let mut resources = p.resources();
            resources.fonts().pair(Name(b"F1"), type0);
            let mut states = resources.ext_g_states();
            for (a, id) in &alpha_ids {
                states.pair(Name(format!("G{a}").as_bytes()), *id);
            }
        }
        for (a, id) in &alpha_ids {
            let v = f32::from(*a) / 255.0;
            pdf.ext_graphics(*id).non_stroking_alpha(v).stroking_alpha(v);
        }
        let compress = |data: &[u8]| miniz_oxide::deflate::compress_to_vec_zlib(data, 6);
        pdf.stream(contents, &compress(&stream)).filter(Filter::FlateDecode);

        // A tag of six capitals from the glyph set, as subset fonts are named: the same glyphs
        // give the same name.
        let hash = crate::sweep::fnv1a(&self.glyphs.keys().flat_map(|g| g.to_be_bytes()).collect::<Vec<_>>());
        let tag: String = (0..6)
            .map(|i| char::from(b'A' + ((hash >> (5 * i)) % 26) as u8))
            .collect();
        let base = format!("{tag}+{FONT_NAME}");
        let system = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        pdf.type0_font(type0)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid)
            .to_unicode(cmap);
        let upem = font.units_per_em().unwrap_or(2048.0);
        let scale = 1000.0 / upem;
        {
            let mut c = pdf.cid_font(cid);
            c.subtype(CidFontType::Type2)
                .base_font(Name(base.as_bytes()))
                .system_info(system)
                .font_descriptor(descriptor)
                .default_width(0.0)
                .cid_to_gid_map_predefined(Name(b"Identity"));
            let widths: Vec<f32> = std::iter::once(0)
                .chain(self.glyphs.keys().copied())
                .map(|g| font.h_advance_unscaled(GlyphId(g)) * scale)
                .collect();
            c.widths().consecutive(0, widths);
        }
        let [x0, y0, x1, y1] = font_bbox(FONT).map(|v| v as f32 * scale);
        pdf.font_descriptor(descriptor)
            .name(Name(base.as_bytes()))
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(x0, y0, x1, y1))
            .italic_angle(0.0)
            .ascent(font.ascent_unscaled() * scale)
            .descent(font.descent_unscaled() * scale)
            .cap_height(729.0)
            .stem_v(80.0)
            .font_file2(file);
        pdf.stream(file, &compress(&subset)).filter(Filter::FlateDecode);
        let mut unicode = UnicodeCmap::new(Name(b"Custom"), system);
        for (&g, &ch) in &self.glyphs {
            unicode.pair(remapper.get(g).expect("remapped"), ch);
        }
        pdf.cmap(cmap, &unicode.finish());
        Ok(pdf.finish())
    }
}
