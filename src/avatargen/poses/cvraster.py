"""OpenCV's rasterisation of the three shapes the OpenPose annotator draws, in pure Python.

controlnet_aux draws limbs with `cv2.fillConvexPoly` (an ellipse2Poly polygon, integer vertices)
and hand edges with `cv2.line(thickness=2)` (a quad in 16-bit fixed point, filled the same way,
plus a radius-1 disc on each end). These are OpenCV 4's algorithms (modules/imgproc/src/drawing.cpp:
FillConvexPoly, Line via LineIterator, Line2, ThickLine), integer for integer, so our skeleton is
the annotator's pixel for pixel without OpenCV (tests/test_pose_reference.py checks it).

Each function returns the pixels to set as (y, x0, x1) row runs or (x, y) points; the caller paints.
"""

from __future__ import annotations

import math

XY_SHIFT = 16
XY_ONE = 1 << XY_SHIFT


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _cv_round(v: float) -> int:
    # cvRound: round half to even (lrint in the default rounding mode)
    return round(v)


def _clip_line(width: int, height: int, p1: list[int], p2: list[int]) -> bool:
    """cv::clipLine on [0, width-1] x [0, height-1]; moves p1/p2 in place; False when outside."""
    right, bottom = width - 1, height - 1
    x1, y1 = p1
    x2, y2 = p2
    c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
    c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int((a - y1) * (x2 - x1) / (y2 - y1))
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int((a - y2) * (x2 - x1) / (y2 - y1))
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int((a - x1) * (y2 - y1) / (x2 - x1))
                x1 = a
                c1 = 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int((a - x2) * (y2 - y1) / (x2 - x1))
                x2 = a
                c2 = 0
    p1[:] = [x1, y1]
    p2[:] = [x2, y2]
    return (c1 | c2) == 0


def line_points(pt1: tuple[int, int], pt2: tuple[int, int], width: int, height: int) -> list[tuple[int, int]]:
    """cv::line's 8-connected thin line between integer points (LineIterator, left to right)."""
    p1, p2 = list(pt1), list(pt2)
    inside = 0 <= p1[0] < width and 0 <= p2[0] < width and 0 <= p1[1] < height and 0 <= p2[1] < height
    if not inside and not _clip_line(width, height, p1, p2):
        return []
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    if dx < 0:  # leftToRight: start from the left end
        p1, p2 = p2, p1
        dx, dy = -dx, -dy
    x, y = p1
    ystep = 1
    if dy < 0:
        dy, ystep = -dy, -1
    steep = dy > dx
    if steep:
        dx, dy = dy, dx
    err = dx - (dy + dy)
    plus_delta, minus_delta = dx + dx, -(dy + dy)
    out = []
    for _ in range(dx + 1):
        out.append((x, y))
        diagonal = err < 0
        err += minus_delta + (plus_delta if diagonal else 0)
        if steep:  # the major step is along y, the minor along x
            y += ystep
            if diagonal:
                x += 1
        else:
            x += 1
            if diagonal:
                y += ystep
    return out


def _line2_points(pt1: list[int], pt2: list[int], width: int, height: int) -> list[tuple[int, int]]:
    """cv's Line2: a thin line between 16-bit fixed-point points (a polygon's outline, shift > 0)."""
    if not _clip_line(width << XY_SHIFT, height << XY_SHIFT, pt1, pt2):
        return []
    (x1, y1), (x2, y2) = pt1, pt2
    dx, dy = x2 - x1, y2 - y1
    ax, ay = abs(dx), abs(dy)
    if ax > ay:
        if dx < 0:
            dy = -dy
            x1, x2, y1, y2 = x2, x1, y2, y1
        x_step, y_step = XY_ONE, _cdiv(dy << XY_SHIFT, ax | 1)
        count = (x2 - x1) >> XY_SHIFT
    else:
        if dy < 0:
            dx = -dx
            x1, x2, y1, y2 = x2, x1, y2, y1
        x_step, y_step = _cdiv(dx << XY_SHIFT, ay | 1), XY_ONE
        count = (y2 - y1) >> XY_SHIFT
    x1 += XY_ONE >> 1
    y1 += XY_ONE >> 1
    out = [((x2 + (XY_ONE >> 1)) >> XY_SHIFT, (y2 + (XY_ONE >> 1)) >> XY_SHIFT)]
    if ax > ay:
        x1 >>= XY_SHIFT
        for _ in range(count + 1):
            out.append((x1, y1 >> XY_SHIFT))
            x1 += 1
            y1 += y_step
    else:
        y1 >>= XY_SHIFT
        for _ in range(count + 1):
            out.append((x1 >> XY_SHIFT, y1))
            x1 += x_step
            y1 += 1
    return [(x, y) for x, y in out if 0 <= x < width and 0 <= y < height]


def fill_convex(
    vertices: list[tuple[int, int]], width: int, height: int, shift: int = 0
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """cv::fillConvexPoly (8-connected, `shift` fractional bits): (outline points, row runs)."""
    npts = len(vertices)
    v = [(int(x), int(y)) for x, y in vertices]
    delta = (1 << shift) >> 1
    delta1 = delta2 = XY_ONE >> 1
    points: list[tuple[int, int]] = []
    p0 = (v[-1][0] << (XY_SHIFT - shift), v[-1][1] << (XY_SHIFT - shift))
    imin = 0
    xmin = xmax = v[0][0]
    ymin = ymax = v[0][1]
    for i, (vx, vy) in enumerate(v):
        if vy < ymin:
            ymin, imin = vy, i
        ymax, xmax, xmin = max(ymax, vy), max(xmax, vx), min(xmin, vx)
        p = (vx << (XY_SHIFT - shift), vy << (XY_SHIFT - shift))
        if shift == 0:
            points += line_points(
                (p0[0] >> XY_SHIFT, p0[1] >> XY_SHIFT), (p[0] >> XY_SHIFT, p[1] >> XY_SHIFT), width, height
            )
        else:
            points += _line2_points(list(p0), list(p), width, height)
        p0 = p
    xmin, xmax = (xmin + delta) >> shift, (xmax + delta) >> shift
    ymin, ymax = (ymin + delta) >> shift, (ymax + delta) >> shift
    runs: list[tuple[int, int, int]] = []
    if npts < 3 or xmax < 0 or ymax < 0 or xmin >= width or ymin >= height:
        return points, runs
    ymax = min(ymax, height - 1)
    # edge: [idx, di, x, dx, ye]
    edges = [[imin, 1, -XY_ONE, 0, ymin], [imin, npts - 1, -XY_ONE, 0, ymin]]
    left_edges = npts
    y = ymin
    while True:
        for edge in edges:
            if y >= edge[4]:
                idx0, di = edge[0], edge[1]
                idx = idx0 + di
                if idx >= npts:
                    idx -= npts
                while left_edges > 0:
                    left_edges -= 1
                    ty = (v[idx][1] + delta) >> shift
                    if ty > y:
                        xs = v[idx0][0] << (XY_SHIFT - shift)
                        xe = v[idx][0] << (XY_SHIFT - shift)
                        edge[4] = ty
                        edge[3] = _cdiv((xe - xs) * 2 + (ty - y), 2 * (ty - y))
                        edge[2] = xs
                        edge[0] = idx
                        break
                    idx0 = idx
                    idx += di
                    if idx >= npts:
                        idx -= npts
                else:
                    left_edges -= 1  # the C loop's post-decrement leaves it at -1 once exhausted
        if left_edges < 0:
            break
        if y >= 0:
            left, right = (edges[1], edges[0]) if edges[0][2] > edges[1][2] else (edges[0], edges[1])
            x1 = (left[2] + delta1) >> XY_SHIFT
            x2 = (right[2] + delta2) >> XY_SHIFT
            if x2 >= 0 and x1 < width:
                runs.append((y, max(x1, 0), min(x2, width - 1)))
        edges[0][2] += edges[0][3]
        edges[1][2] += edges[1][3]
        y += 1
        if y > ymax:
            break
    return points, runs


def thick_line_quad(pa: tuple[int, int], pb: tuple[int, int]) -> list[tuple[int, int]] | None:
    """cv::line(thickness=2)'s quad in 16-bit fixed point (ThickLine), None for a zero-length line."""
    p0 = (pa[0] << XY_SHIFT, pa[1] << XY_SHIFT)
    p1 = (pb[0] << XY_SHIFT, pb[1] << XY_SHIFT)
    dx = (p0[0] - p1[0]) / XY_ONE
    dy = (p1[1] - p0[1]) / XY_ONE
    r = dx * dx + dy * dy
    if math.fabs(r) <= 2.220446049250313e-16:
        return None
    r = (2 << (XY_SHIFT - 1)) / math.sqrt(r)  # thickness 2: even, so no half pixel added
    ox, oy = _cv_round(dy * r), _cv_round(dx * r)
    return [
        (p0[0] + ox, p0[1] + oy),
        (p0[0] - ox, p0[1] - oy),
        (p1[0] - ox, p1[1] - oy),
        (p1[0] + ox, p1[1] + oy),
    ]
