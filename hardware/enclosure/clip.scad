// tiltguard clip: parametric case + belt clip for the reference build, and a sleeve for the M5StickC Plus2.
//
// Model axes ARE the device axes (docs/conventions.md):
//   x = +X up (towards the head), y = +Y the runner's left, z = +Z away from the body.
// The lid is the outer face (z max, embossed axis arrows); the belt clip is on the body side (z < 0).
//
// Render:  openscad -o clip.stl clip.scad                       (assembly: the documented outer size)
//          openscad -D 'part="tray"' -o tray.stl clip.scad      (print parts: tray (with clip), lid,
//                                                               m5_sleeve)
// Sizes are in mm. The outer size is echoed as "outer_size_mm" and written down in size.json.

part = "assembly";          // "assembly" | "tray" | "lid" | "m5_sleeve"
$fn = 16;                   // low on purpose: the test renders this in a few seconds

// ---- the parts inside (from hardware/bom.csv) ----
xiao = [21.0, 17.8, 4.5];   // Seeed XIAO ESP32S3: length (USB-C end at -x), width, height incl. USB-C on top
imu_pcb = [25.4, 25.4, 5.0];// SparkFun SEN-21325 (1 in square), height incl. Qwiic connectors
cell = [36.0, 29.0, 4.75];  // Adafruit 1578 LiPo 500 mAh: length, width, thickness
swell = 0.5;                // LiPo swelling allowance
foam = 0.8;                 // foam tape between the cell and the boards
motor_d = 10.0;             // Adafruit 1201 coin motor diameter (2.7 mm thick, sits beside the cell)
board_gap = 2.0;            // between the IMU breakout and the XIAO
gap = 1.0;                  // clearance parts <-> walls

// ---- shell ----
wall = 1.6;
floor_t = 1.6;
lid_t = 1.6;
lip_h = 2.0;                // lid lip reaching into the tray
lip_t = 1.2;
fit = 0.2;                  // lip clearance
r_corner = 3.0;
emboss = 0.6;               // height of the embossed axis marks
led_window_t = 0.6;         // lid thinned here so a light print shows the XIAO's user LED

// ---- belt clip (body side) ----
clip_w = 20.0;
clip_t = 2.2;
clip_gap = 3.0;             // waistband thickness it takes
clip_len = 40.0;            // tongue length from the top end
bump = 1.0;                 // retaining bump at the tongue's free end

// ---- M5StickC Plus2 sleeve: measure your unit and set m5 ----
m5 = [54.0, 25.0, 16.0];    // length (USB-C end at -x), width, thickness (screen face at +z)
m5_fit = 0.4;
m5_lip = 2.0;               // front lips holding the stick, leaving the screen and button A free

inner = [max(imu_pcb[0] + board_gap + xiao[0], cell[0] + gap + motor_d) + 2 * gap,
         max(cell[1], imu_pcb[1], xiao[1]) + 2 * gap,
         cell[2] + swell + foam + max(imu_pcb[2], xiao[2]) + gap];
case = [inner[0] + 2 * wall, inner[1] + 2 * wall, inner[2] + floor_t + lid_t];
tray_h = case[2] - lid_t;
deck_z = floor_t + cell[2] + swell + foam;      // underside of the boards

outer_min = [0, 0, -(clip_gap + clip_t)];
outer_max = [case[0], case[1], case[2] + emboss];
echo(str("outer_size_mm=", outer_max - outer_min));
echo(str("case_size_mm=", case));

module rbox(size, r) {      // box with rounded vertical (z) edges, corner at the origin
    hull() for (x = [r, size[0] - r], y = [r, size[1] - r])
        translate([x, y, 0]) cylinder(r = r, h = size[2]);
}

module tray() {
    difference() {
        rbox([case[0], case[1], tray_h], r_corner);
        translate([wall, wall, floor_t]) rbox([inner[0], inner[1], tray_h], r_corner - wall / 2);
        // USB-C of the XIAO through the bottom wall (-x end), board centred in y
        translate([-1, case[1] / 2 - 5, deck_z - 0.5]) cube([wall + 2, 10, 4.5]);
        // button on the runner's left side (+y wall), at the board deck
        translate([case[0] * 0.6, case[1] - wall - 1, deck_z + 1.5]) rotate([-90, 0, 0]) cylinder(d = 4, h = wall + 2);
    }
}

module seg(a, b, w = 0.9) { hull() { translate(a) square(w, center = true); translate(b) square(w, center = true); } }

module glyph(c, s) {        // stroke letters (no font needed on CI)
    if (c == "X") { seg([0, 0], [0.7 * s, s]); seg([0, s], [0.7 * s, 0]); }
    if (c == "Y") { seg([0, s], [0.35 * s, 0.5 * s]); seg([0.7 * s, s], [0.35 * s, 0.5 * s]); seg([0.35 * s, 0.5 * s], [0.35 * s, 0]); }
    if (c == "Z") { seg([0, s], [0.7 * s, s]); seg([0.7 * s, s], [0, 0]); seg([0, 0], [0.7 * s, 0]); }
    if (c == "+") { seg([0, 0.5 * s], [0.6 * s, 0.5 * s]); seg([0.3 * s, 0.2 * s], [0.3 * s, 0.8 * s]); }
}

module label(txt, s = 4) {  // drawn as read from outside: screen right = -y, screen up = +x
    rotate([0, 0, -90]) for (i = [0 : len(txt) - 1]) translate([i * 0.85 * s, 0]) glyph(txt[i], s);
}

module axis_marks() {       // 2D, in lid coordinates
    o = [case[0] * 0.25, case[1] * 0.25];
    translate(o) {
        seg([0, 0], [13, 0], 1.2);                                        // +X arrow, up
        translate([13, 0]) polygon([[3, 0], [0, 2], [0, -2]]);
        translate([17.5, 2.5]) label("+X");
        seg([0, 0], [0, 12], 1.2);                                        // +Y arrow, runner's left
        translate([0, 12]) polygon([[0, 3], [2, 0], [-2, 0]]);
        translate([-2.5, 22]) label("+Y");
        difference() { circle(d = 5.5); circle(d = 3.7); }                // +Z: out of the face
        circle(d = 1.6);
        translate([-8, 2.5]) label("+Z");
    }
}

module lid() {
    difference() {
        union() {
            translate([0, 0, tray_h]) rbox([case[0], case[1], lid_t], r_corner);
            // lip that keys into the tray opening
            translate([wall + fit, wall + fit, tray_h - lip_h]) difference() {
                rbox([inner[0] - 2 * fit, inner[1] - 2 * fit, lip_h], r_corner - wall / 2);
                translate([lip_t, lip_t, -1]) rbox([inner[0] - 2 * fit - 2 * lip_t, inner[1] - 2 * fit - 2 * lip_t, lip_h + 2], 1);
            }
        }
        // LED window over the XIAO's USB end (thin lid, no hole: sweat stays out)
        translate([wall + gap + 2, case[1] / 2 - 2, tray_h - 1]) cube([6, 4, 1 + lid_t - led_window_t]);
    }
    translate([0, 0, case[2] - 0.2]) linear_extrude(height = emboss + 0.2) axis_marks();
}

module belt_clip(length, width, attach_x) {  // on the back (z < 0), hinge at the top end
    y0 = (case[1] - width) / 2;
    // bridge from the case back to the tongue (overlaps the floor a little so the union is solid)
    translate([attach_x - 8, y0, -(clip_gap + clip_t)]) cube([8, width, clip_gap + clip_t + 0.5]);
    translate([attach_x - length, y0, -(clip_gap + clip_t)]) cube([length, width, clip_t]);
    translate([attach_x - length, y0, -clip_gap - 0.1]) cube([3, width, bump + 0.1]);
}

module m5_sleeve() {
    o = [m5[0] + 2 * m5_fit + wall, m5[1] + 2 * m5_fit + 2 * wall, m5[2] + 2 * m5_fit + 2 * wall];
    difference() {
        rbox(o, 2);
        // the stick slides in from the bottom (-x), USB-C stays free
        translate([-1, wall, wall]) cube([m5[0] + 2 * m5_fit + 1, m5[1] + 2 * m5_fit, m5[2] + 2 * m5_fit]);
        // front window: screen and button A
        translate([-1, wall + m5_lip, o[2] - wall - 1]) cube([m5[0] + 1 - m5_lip, m5[1] + 2 * m5_fit - 2 * m5_lip, wall + 2]);
    }
    belt_clip(min(clip_len, o[0] - 6), min(clip_w, o[1] - 2), o[0] - 2);
}

// print parts: the tray prints floor down, the clip tongue on the bed (support the 3 mm clip gap);
// the lid prints outer face up with its lip on the bed.
if (part == "tray") translate([0, 0, clip_gap + clip_t]) { tray(); belt_clip(clip_len, clip_w, case[0] - 2); }
else if (part == "lid") translate([0, 0, lip_h - tray_h]) lid();   // print outer face up, lip on the bed
else if (part == "m5_sleeve") m5_sleeve();
else { tray(); lid(); belt_clip(clip_len, clip_w, case[0] - 2); }
